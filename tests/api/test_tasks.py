"""GET /v1/tasks: filters and cursor pagination; a run in full; retry and cancel; stats."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient

from notifyd.timeutil import utcnow
from tests.support import wait_for


def _send(client: TestClient, count: int, **extra: Any) -> list[str]:
    ids = []
    for i in range(count):
        response = client.post("/v1/notifications", json={"to": f"r{i}", "message": "m", **extra})
        assert response.status_code == 202
        ids.append(response.json()["tasks"][0]["id"])
    return ids


def _all_succeeded(client: TestClient, ids: list[str]) -> bool:
    return all(client.get(f"/v1/tasks/{i}").json()["status"] == "succeeded" for i in ids)


def test_list_is_newest_first_with_cursor_pagination(client: TestClient) -> None:
    ids = _send(client, 7)
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/v1/tasks", params=params).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))


def test_filters(client: TestClient) -> None:
    ids = _send(client, 3)
    wait_for(lambda: _all_succeeded(client, ids), what="deliveries")
    assert len(client.get("/v1/tasks", params={"status": "succeeded"}).json()["items"]) == 3
    assert client.get("/v1/tasks", params={"status": "failed"}).json()["items"] == []
    assert len(client.get("/v1/tasks", params={"channel": "log"}).json()["items"]) == 3
    assert client.get("/v1/tasks", params={"channel": "email"}).json()["items"] == []
    future = (utcnow() + timedelta(hours=1)).isoformat()
    assert client.get("/v1/tasks", params={"since": future}).json()["items"] == []
    assert client.get("/v1/tasks", params={"limit": 501}).status_code == 422
    assert client.get("/v1/tasks", params={"status": "bogus"}).status_code == 422


def test_a_run_in_full(client: TestClient) -> None:
    [run_id] = _send(client, 1)
    wait_for(lambda: _all_succeeded(client, [run_id]), what="delivery")
    run = client.get(f"/v1/tasks/{run_id}").json()
    assert run["args"]["recipient"] == "r0"
    [attempt] = run["attempts_detail"]
    assert (
        attempt["outcome"] == "succeeded" and attempt["finished_at"] and attempt["duration_ms"] >= 0
    )


def test_cancel_then_retry(held_client: TestClient) -> None:
    client = held_client
    [run_id] = _send(client, 1)
    cancelled = client.post(f"/v1/tasks/{run_id}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    again = client.post(f"/v1/tasks/{run_id}/cancel")
    assert again.status_code == 409
    assert "only queued or retrying" in again.json()["detail"]
    retried = client.post(f"/v1/tasks/{run_id}/retry")
    assert retried.status_code == 200 and retried.json()["status"] == "queued"
    assert client.post(f"/v1/tasks/{run_id}/retry").status_code == 409
    assert client.post("/v1/tasks/run_nope/retry").status_code == 404
    stats = client.get("/v1/tasks/stats").json()
    assert stats["by_status"]["queued"] == 1
    assert stats["by_channel"]["log"]["queued"] == 1
    assert stats["oldest_queued_age_seconds"] >= 0
