"""POST/GET /v1/notifications: 202 means durable, ids, Location, validation, problem+json."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from notifyd.config import Settings
from tests.support import wait_for

PROBLEM = "application/problem+json"


def _post(client: TestClient, **body: Any) -> Any:
    return client.post("/v1/notifications", json=body)


def test_accepts_with_ids_and_location_then_delivers(
    client: TestClient, settings: Settings
) -> None:
    response = _post(
        client, to=["a@example.com", "b@example.com"], subject="Hi", message="Hello", data={"k": 1}
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["id"].startswith("ntf_") and body["status"] == "accepted"
    assert response.headers["location"] == f"/v1/notifications/{body['id']}"
    assert [(t["to"], t["channel"], t["status"]) for t in body["tasks"]] == [
        ("a@example.com", "log", "queued"),
        ("b@example.com", "log", "queued"),
    ]
    url = f"/v1/notifications/{body['id']}"
    wait_for(lambda: client.get(url).json()["status"] == "delivered", what="delivery")
    note = client.get(url).json()
    assert note["to"] == ["a@example.com", "b@example.com"]
    assert note["subject"] == "Hi" and note["data"] == {"k": 1}
    lines = [json.loads(line) for line in settings.log_file.read_text().splitlines()]
    assert sorted(line["to"] for line in lines) == ["a@example.com", "b@example.com"]
    assert {line["delivery_id"] for line in lines} == {t["id"] for t in body["tasks"]}
    assert all(line["message"] == "Hello" for line in lines)


def test_a_single_recipient_string_and_repeats_make_one_run_each(client: TestClient) -> None:
    assert len(_post(client, to="solo", message="m").json()["tasks"]) == 1
    assert len(_post(client, to=["x", "x", "y"], message="m").json()["tasks"]) == 2


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"channel": "pigeon", "to": "a", "message": "m"}, "channel"),
        ({"to": [], "message": "m"}, "to"),
        ({"to": "a"}, "message"),
        ({"message": "m"}, "to"),
        ({"to": ["  "], "message": "m"}, "to[0]"),
        ({"to": "a", "message": "m", "surprise": 1}, "surprise"),
    ],
)
def test_bad_bodies_are_422_problems_naming_the_field(
    client: TestClient, body: dict[str, Any], field: str
) -> None:
    response = client.post("/v1/notifications", json=body)
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["status"] == 422 and problem["title"] and problem["type"]
    assert field in problem["detail"]


def test_unknown_ids_are_404_problems(client: TestClient) -> None:
    for path in ("/v1/notifications/ntf_nope", "/v1/tasks/run_nope"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.headers["content-type"] == PROBLEM
        assert "nope" in response.json()["detail"]


def test_malformed_json_is_a_422_problem(client: TestClient) -> None:
    response = client.post(
        "/v1/notifications", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM


def test_healthz(client: TestClient) -> None:
    body = client.get("/healthz").json()
    assert body["status"] == "ok" and body["database"] == "sqlite"


def test_openapi_documents_the_api(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    for path in (
        "/v1/notifications",
        "/v1/notifications/{notification_id}",
        "/v1/tasks",
        "/v1/tasks/{run_id}",
    ):
        assert path in schema["paths"]
    assert "202" in schema["paths"]["/v1/notifications"]["post"]["responses"]


def test_an_unreachable_database_is_a_503_with_retry_after(
    app: Any, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import OperationalError

    async def down(*args: Any, **kwargs: Any) -> None:
        raise OperationalError("INSERT", {}, ConnectionRefusedError("connection refused"))

    monkeypatch.setattr(app.state.runtime.tracker.writer, "run", down)
    response = _post(client, to="a", message="m")
    assert response.status_code == 503
    assert response.headers["content-type"] == PROBLEM
    assert response.headers["retry-after"] == "2"
    assert "retry" in response.json()["detail"]
    assert "INSERT" not in response.text
