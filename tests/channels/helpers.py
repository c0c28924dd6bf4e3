"""Helpers for the channel tests: messages as the delivery task builds them, submitting, waiting."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient

from notifyd.channels.base import OutgoingMessage
from notifyd.config import RetryPolicySettings
from tests.support import wait_for

# Fast retries for end-to-end tests: the schedule, not the clock, is what they exercise.
FAST_RETRY = RetryPolicySettings(max_attempts=100, schedule=[0.2], jitter=0)
FINISHED = {"succeeded", "failed", "cancelled"}


def outgoing(**fields: Any) -> OutgoingMessage:
    """A message as the delivery task builds it."""
    values: dict[str, Any] = {
        "delivery_id": "run_test0001",
        "notification_id": "ntf_test0001",
        "subject": "Disk almost full",
        "message": "db-1 is at 91% disk.",
        "data": {"host": "db-1"},
        "created_at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    }
    values.update(fields)
    return OutgoingMessage(**values)


def wait_run(client: TestClient, run_id: str, *statuses: str) -> dict[str, Any]:
    """Poll ``GET /v1/tasks/{id}`` until the run is in one of ``statuses``; return it."""
    wanted = set(statuses) or FINISHED

    def check() -> dict[str, Any] | None:
        run: dict[str, Any] = client.get(f"/v1/tasks/{run_id}").json()
        return run if run["status"] in wanted else None

    return wait_for(check, timeout=30, what=f"run {run_id} to be {'/'.join(sorted(wanted))}")


def submit(client: TestClient, **body: Any) -> dict[str, Any]:
    """POST a notification; assert 202; return the body."""
    response = client.post("/v1/notifications", json=body)
    assert response.status_code == 202, response.text
    accepted: dict[str, Any] = response.json()
    return accepted


def every_view(client: TestClient, accepted: dict[str, Any], run: dict[str, Any]) -> list[str]:
    """Everything the API shows of a submission: to search for secrets that must not be there."""
    return [
        json.dumps(accepted),
        json.dumps(run),
        client.get(f"/v1/notifications/{accepted['id']}").text,
        client.get("/v1/tasks").text,
    ]
