"""ntfy's subscribe API against a real server, read as ntfy's clients read it."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.compat.inbox_support import Lines, inbox_server, kept, publish
from tests.support import ServerProcess, wait_for

pytestmark = pytest.mark.system


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One open (loopback, no tokens) server for the module; keepalives every half second."""
    home = tmp_path_factory.mktemp("ntfy-subscribe")
    with inbox_server(home, NOTIFYD_INBOX__KEEPALIVE_SECONDS="0.5") as found:
        yield found


def test_json_stream_opens_replays_and_follows_in_ntfys_shapes(server: ServerProcess) -> None:
    publish(server, "desk", "kept before", Title="Earlier")
    kept(server, "desk", "kept before")
    with Lines(f"{server.url}/desk/json?since=all") as stream:
        assert stream.status == 200
        assert stream.headers["content-type"] == "application/x-ndjson; charset=utf-8"
        opened = stream.event()
        assert opened["event"] == "open" and opened["topic"] == "desk"
        assert set(opened) == {"id", "time", "event", "topic"}
        replayed = stream.event()
        assert replayed["message"] == "kept before" and replayed["title"] == "Earlier"
        publish(server, "desk", "live one", Tags="warning,skull", Priority="high",
                Click="https://example.org/x")  # fmt: skip
        live = stream.event()
    assert set(live) == {
        "id", "time", "expires", "event", "topic", "message", "priority", "tags", "click",
    }  # fmt: skip
    assert (live["event"], live["topic"], live["message"]) == ("message", "desk", "live one")
    assert (live["priority"], live["tags"], live["click"]) == (4, ["warning", "skull"],
                                                             "https://example.org/x")  # fmt: skip
    assert len(live["id"]) == 12 and live["id"].isalnum() and live["id"] != replayed["id"]
    assert live["expires"] - live["time"] == 12 * 3600


def test_icons_attachment_links_and_markdown_reach_the_subscriber(server: ServerProcess) -> None:
    answer = publish(
        server, "desk", "**see** the report", Markdown="yes", Icon="https://example.org/i.png",
        Attach="https://example.org/files/report.pdf", Filename="Report.pdf",
    )  # fmt: skip
    assert answer["attachment"] == {
        "name": "Report.pdf",
        "url": "https://example.org/files/report.pdf",
    }
    kept(server, "desk", "**see** the report")
    with Lines(f"{server.url}/desk/json?since=latest") as stream:
        stream.event()
        found = stream.event()
    assert found["icon"] == "https://example.org/i.png"
    assert found["attachment"] == {
        "name": "Report.pdf",
        "url": "https://example.org/files/report.pdf",
    }
    assert found["content_type"] == "text/markdown"


def test_keepalive_when_idle(server: ServerProcess) -> None:
    with Lines(f"{server.url}/phone/json") as stream:
        assert stream.event()["event"] == "open"
        keepalive = stream.event(timeout=10)
    assert keepalive["event"] == "keepalive" and keepalive["topic"] == "phone"


def test_sse_and_raw(server: ServerProcess) -> None:
    with Lines(f"{server.url}/phone/sse") as sse, Lines(f"{server.url}/phone/raw") as raw:
        assert sse.headers["content-type"].startswith("text/event-stream")
        assert sse.line() == "event: open"
        assert json.loads(sse.line().removeprefix("data: "))["event"] == "open"
        assert sse.line() == ""
        assert raw.line() == ""  # raw's open event is an empty line
        publish(server, "phone", "two\nlines")
        data = sse.line()
        while not data.startswith("data: "):  # a keepalive may come first
            data = sse.line()
        event = json.loads(data.removeprefix("data: "))
        if event["event"] == "keepalive":
            data = sse.line()
            while not data.startswith("data: "):
                data = sse.line()
            event = json.loads(data.removeprefix("data: "))
        assert (event["event"], event["message"]) == ("message", "two\nlines")
        text = raw.line()
        while text == "":
            text = raw.line()
        assert text == "two lines"


def test_websocket(server: ServerProcess) -> None:
    publish(server, "phone", "before the socket")
    kept(server, "phone", "before the socket")
    with connect(server.url.replace("http", "ws") + "/phone/ws?since=latest") as socket:
        assert json.loads(socket.recv(timeout=10))["event"] == "open"
        assert json.loads(socket.recv(timeout=10))["message"] == "before the socket"
        publish(server, "phone", "over the socket")
        assert json.loads(socket.recv(timeout=10))["message"] == "over the socket"
    with pytest.raises(InvalidStatus) as refused:
        connect(server.url.replace("http", "ws") + "/no%20such/ws")
    assert refused.value.response.status_code == 400
    assert json.loads(refused.value.response.body or b"")["code"] == 40009


def test_several_topics_and_filters(server: ServerProcess) -> None:
    url = f"{server.url}/phone,ops/json?priority=high,urgent&tags=db"
    with Lines(url) as stream:
        assert stream.event()["topic"] == "phone,ops"
        publish(server, "phone", "low, filtered out", Tags="db", Priority="low")
        publish(server, "ops", "high, no tag, filtered out", Priority="high")
        publish(server, "desk", "another topic")
        publish(server, "ops", "passes", Tags="db,disk", Priority="urgent")
        found = stream.event()
        while found["event"] == "keepalive":
            found = stream.event()
    assert (found["topic"], found["message"]) == ("ops", "passes")


def test_poll_and_since_a_message_id(server: ServerProcess) -> None:
    first = publish(server, "ops", "p1")
    publish(server, "ops", "p2")
    publish(server, "ops", "p3")
    kept(server, "ops", "p3")
    polled = httpx.get(f"{server.url}/ops/json?poll=1", timeout=10)
    messages = [json.loads(line) for line in polled.text.splitlines()]
    assert [m["message"] for m in messages][-3:] == ["p1", "p2", "p3"]
    assert all(m["event"] == "message" for m in messages)  # a poll has no open event
    after = next(m["id"] for m in messages if m["message"] == "p1")
    assert first["id"] == after  # the publishing answer names the message, as ntfy's does
    tail = httpx.get(f"{server.url}/ops/json?poll=1&since={after}", timeout=10)
    assert [json.loads(line)["message"] for line in tail.text.splitlines()] == ["p2", "p3"]
    headers = httpx.get(f"{server.url}/ops/json", headers={"X-Poll": "1", "X-Since": after})
    assert len(headers.text.splitlines()) == 2
    assert httpx.get(f"{server.url}/ops/auth").json() == {"success": True}


def test_the_run_records_the_subscribers_it_reached(server: ServerProcess) -> None:
    with Lines(f"{server.url}/desk/json") as one, Lines(f"{server.url}/desk/json") as two:
        one.event(), two.event()
        answer = httpx.post(
            f"{server.url}/v1/notifications",
            json={"channel": "inbox", "to": "desk", "message": "counted"},
        )
        assert answer.status_code == 202
        run_id = answer.json()["tasks"][0]["id"]
        for stream in (one, two):
            found = stream.event()
            while found["event"] == "keepalive":
                found = stream.event()
            assert found["message"] == "counted"

    def attempt() -> dict[str, Any] | None:
        run = httpx.get(f"{server.url}/v1/tasks/{run_id}").json()
        return run if run["status"] == "succeeded" else None

    run = wait_for(attempt, timeout=15, what="the inbox run to succeed")
    assert run["attempts_detail"][0]["response"]["subscribers"] == 2
    assert run["attempts_detail"][0]["response"]["topic"] == "desk"


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/no%20such/json", 40009),
        ("/" + "x" * 65 + "/json", 40009),
        ("/a,,%2e%2e/json", 40009),
        ("/%C3%A9t%C3%A9/sse", 40009),
        ("/" + ",".join(f"t{i}" for i in range(51)) + "/json", 40009),
        ("/phone/json?since=yesterday", 40008),
        ("/phone/json?since=" + "9" * 5000, 40008),
        ("/phone/json?since=%C2%B2", 40008),
        ("/phone/raw?since=-1h", 40008),
        ("/phone/json?priority=9", 40007),
        ("/phone/json?priority=%00", 40007),
        ("/phone/sse?poll=1&since=1e99", 40008),
    ],
)
def test_hostile_input_gets_ntfys_400(server: ServerProcess, path: str, code: int) -> None:
    answer = httpx.get(server.url + path, timeout=10)
    assert answer.status_code == 400, answer.text
    assert answer.json()["code"] == code and answer.json()["http"] == 400


def test_notifyds_own_paths_are_not_topics(server: ServerProcess) -> None:
    answer = httpx.get(f"{server.url}/v1/json")
    assert answer.status_code == 404
    assert answer.headers["content-type"].startswith("application/problem+json")


def test_auth_read_tokens_subscribe_send_tokens_do_not(tmp_path: Path) -> None:
    with inbox_server(tmp_path / "home", NOTIFYD_TOKEN_CACHE_SECONDS="0") as server:

        def token(name: str, *extra: str) -> str:
            return server.cli("tokens", "create", name, *extra).stdout.strip().split()[-1]

        reader = token("phone-app", "--scope", "read")
        sender = token("script", "--scope", "send")
        bound = token("desk-only", "--scope", "read", "--destination", "desk")

        def get(path: str, headers: dict[str, str] | None = None) -> httpx.Response:
            return httpx.get(server.url + path, headers=headers, timeout=10)

        assert get("/phone/json?poll=1").json()["code"] == 40101
        assert get("/phone/json?poll=1", headers={"Authorization": f"Bearer {reader}"}).is_success
        basic = base64.b64encode(f":{reader}".encode()).decode()
        assert get("/phone/json?poll=1", headers={"Authorization": f"Basic {basic}"}).is_success
        auth = base64.urlsafe_b64encode(f"Bearer {reader}".encode()).decode().rstrip("=")
        assert get(f"/phone/json?poll=1&auth={auth}").is_success
        refused = get("/phone/json?poll=1", headers={"Authorization": f"Bearer {sender}"})
        assert refused.status_code == 403 and refused.json()["code"] == 40301
        assert "scope read" in refused.json()["error"]
        mine = {"Authorization": f"Bearer {bound}"}
        assert get("/desk/json?poll=1", headers=mine).is_success
        assert get("/desk,phone/json?poll=1", headers=mine).json()["code"] == 40301
        assert get("/phone/auth", headers=mine).status_code == 403
        assert get("/desk/auth", headers=mine).json() == {"success": True}


def test_too_many_subscriptions_from_one_address_get_429(tmp_path: Path) -> None:
    with inbox_server(tmp_path / "home", NOTIFYD_INBOX__PER_ADDRESS="2") as server:
        with Lines(f"{server.url}/phone/json") as one, Lines(f"{server.url}/desk/json") as two:
            one.event(), two.event()
            third = httpx.get(f"{server.url}/phone/json", timeout=10)
            assert third.status_code == 429 and third.json()["code"] == 42903

        # The two left: their places are free again.
        def free() -> bool | None:
            with Lines(f"{server.url}/phone/json") as again:
                return again.status == 200 or None

        assert wait_for(free, timeout=10, what="a free place")


def test_metrics_count_the_live_subscribers(server: ServerProcess) -> None:
    def subscribers() -> float:
        for line in httpx.get(f"{server.url}/metrics").text.splitlines():
            if line.startswith("notifyd_subscribers "):
                return float(line.split()[1])
        raise AssertionError("no notifyd_subscribers in /metrics")

    before = subscribers()
    with Lines(f"{server.url}/phone/json") as one, Lines(f"{server.url}/desk,ops/sse") as two:
        one.event(), two.line()
        assert subscribers() == before + 2
    assert wait_for(lambda: subscribers() == before or None, timeout=10, what="both gone")
    assert "notifyd_subscribers_dropped_total 0.0" in httpx.get(f"{server.url}/metrics").text
