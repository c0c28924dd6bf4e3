"""ntfy's publish API: header and query aliases, auth forms, the answer and error shapes."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest

from notifyd.tokens import Scope
from tests.compat.conftest import Server, Start


def test_post_topic_with_header_aliases_delivers(server: Server) -> None:
    answer = server.client.post(
        "/alerts",
        content="Backup finished",
        headers={"X-Title": "Backups", "Priority": "high", "Tags": "floppy_disk, ok"},
    )
    assert answer.status_code == 200, answer.text
    message = answer.json()
    assert message["event"] == "message"
    assert message["topic"] == "alerts"
    assert message["message"] == "Backup finished"
    assert message["title"] == "Backups"
    assert message["priority"] == 4
    assert message["tags"] == ["floppy_disk", "ok"]
    assert isinstance(message["time"], int)
    [line] = server.delivered()
    assert line["notification_id"] == message["id"]
    assert (line["to"], line["subject"], line["message"]) == (
        "oncall",
        "Backups",
        "Backup finished",
    )
    assert line["priority"] == 4
    assert line["data"] == {"tags": ["floppy_disk", "ok"]}


@pytest.mark.parametrize(
    ("params", "headers", "title", "priority"),
    [
        ({"t": "short"}, {}, "short", 3),
        ({"title": "query"}, {}, "query", 3),
        ({}, {"Title": "plain header"}, "plain header", 3),
        ({"title": "query"}, {"X-Title": "header wins"}, "header wins", 3),
        ({"p": "5"}, {}, None, 5),
        ({"priority": "min"}, {}, None, 1),
        ({}, {"X-Priority": "urgent"}, None, 5),
        ({}, {"Priority": "max"}, None, 5),
        ({}, {"X-Priority": "2"}, None, 2),
        ({}, {"p": "default"}, None, 3),
    ],
)
def test_aliases(
    server: Server,
    params: dict[str, str],
    headers: dict[str, str],
    title: str | None,
    priority: int,
) -> None:
    answer = server.client.put("/deploys", content="v2", params=params, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json().get("title") == title
    assert answer.json()["priority"] == priority


def test_click_and_markdown_travel_in_data(server: Server) -> None:
    answer = server.client.post(
        "/alerts",
        content="**bold**",
        headers={"X-Click": "https://example.org/x", "Markdown": "yes"},
    )
    assert answer.status_code == 200
    assert answer.json()["click"] == "https://example.org/x"
    [line] = server.delivered()
    assert line["data"] == {"click": "https://example.org/x", "markdown": True}


def test_get_publish_send_trigger(server: Server) -> None:
    for verb in ("publish", "send", "trigger"):
        answer = server.client.get(f"/alerts/{verb}", params={"message": verb, "t": "via get"})
        assert answer.status_code == 200, answer.text
        assert answer.json()["message"] == verb
    empty = server.client.get("/alerts/trigger")
    assert empty.json()["message"] == "triggered"
    assert len(server.delivered(4)) == 4


def test_json_publish_to_root(server: Server) -> None:
    answer = server.client.post(
        "/",
        json={
            "topic": "deploys",
            "message": "shipped",
            "title": "CI",
            "priority": 4,
            "tags": ["rocket"],
            "click": "https://ci.example.org/1",
            "markdown": False,
            "attach": "ignored",
        },
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["topic"], body["message"], body["title"], body["priority"]) == (
        "deploys",
        "shipped",
        "CI",
        4,
    )
    [line] = server.delivered()
    assert line["to"] == "team"


def test_unknown_topic_is_404_in_ntfy_shape(server: Server) -> None:
    answer = server.client.post("/nosuchtopic", content="x")
    assert answer.status_code == 404
    body = answer.json()
    assert body["code"] == 40401 and body["http"] == 404 and "nosuchtopic" in body["error"]
    json_root = server.client.post("/", json={"topic": "nosuchtopic", "message": "x"})
    assert json_root.status_code == 404 and json_root.json()["code"] == 40401


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({"X-Priority": "9"}, 40007),
        ({"X-Delay": "next blue moon"}, 40004),
        ({"X-Delay": "40d"}, 40006),
    ],
)
def test_bad_parameters_in_ntfy_shape(server: Server, headers: dict[str, str], code: int) -> None:
    answer = server.client.post("/alerts", content="x", headers=headers)
    assert answer.status_code == 400
    assert answer.json()["code"] == code and answer.json()["http"] == 400


def test_bad_json_publish(server: Server) -> None:
    answer = server.client.post("/", content=b"not json")
    assert answer.status_code == 400 and answer.json()["code"] == 40017


def test_own_paths_are_not_topics(server: Server) -> None:
    assert server.client.get("/healthz").status_code == 200
    assert server.client.post("/healthz", content="x").status_code == 405
    assert server.client.get("/openapi.json").status_code == 200
    assert server.client.get("/v1/destinations").status_code == 200
    paths = server.client.get("/openapi.json").json()["paths"]
    assert "/{topic}" not in paths and "/message" not in paths


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_auth_forms(server: Server) -> None:
    token = server.token("ntfy-client")
    assert server.client.post("/alerts", content="x").status_code == 401
    unauthorized = server.client.post("/alerts", content="x")
    assert unauthorized.json()["code"] == 40101 and unauthorized.json()["http"] == 401
    forms = [
        {"headers": {"Authorization": f"Bearer {token}"}},
        {"headers": {"Authorization": _basic("anyone", token)}},
        {"headers": {"Authorization": _basic("", token)}},
        {"params": {"auth": base64.urlsafe_b64encode(f"Bearer {token}".encode()).decode()}},
        {
            "params": {
                "auth": base64.urlsafe_b64encode(_basic("", token).encode()).decode().rstrip("=")
            }
        },
    ]
    for form in forms:
        answer = server.client.post("/alerts", content="authorized", **form)  # type: ignore[arg-type]
        assert answer.status_code == 200, (form, answer.text)
    wrong = server.client.post("/alerts", content="x", headers={"Authorization": "Bearer ntd_no"})
    assert wrong.status_code == 401 and wrong.json()["code"] == 40101


def test_read_token_is_forbidden_and_bound_token_stays_on_its_destination(server: Server) -> None:
    reader = server.token("reader", Scope.read)
    answer = server.client.post(
        "/alerts", content="x", headers={"Authorization": f"Bearer {reader}"}
    )
    assert answer.status_code == 403 and answer.json()["code"] == 40301
    bound = server.token("deploy-bot", destination="deploys")
    headers = {"Authorization": f"Bearer {bound}"}
    assert server.client.post("/deploys", content="ok", headers=headers).status_code == 200
    other = server.client.post("/alerts", content="no", headers=headers)
    assert other.status_code == 403 and other.json()["code"] == 40301


def test_delay_schedules_the_run(server: Server) -> None:
    before = datetime.now(UTC)
    answer = server.client.post("/alerts", content="later", headers={"X-Delay": "30m"})
    assert answer.status_code == 200
    due = datetime.fromtimestamp(answer.json()["time"], UTC)
    assert timedelta(minutes=29) < due - before < timedelta(minutes=31)
    admin = server.admin()
    note = server.client.get(f"/v1/notifications/{answer.json()['id']}", headers=admin).json()
    [task] = note["tasks"]
    run = server.client.get(f"/v1/tasks/{task['id']}", headers=admin).json()
    assert run["status"] == "queued" and run["scheduled"] is True
    assert run["next_attempt_at"] is not None


def test_at_unix_time(start: Start) -> None:
    server = start()
    when = int((datetime.now(UTC) + timedelta(hours=2)).timestamp())
    answer = server.client.post("/alerts", content="x", headers={"At": str(when)})
    assert answer.status_code == 200 and answer.json()["time"] == when
