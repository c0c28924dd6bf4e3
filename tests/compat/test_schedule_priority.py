"""send_at / delay and priority on POST /v1/notifications, priority on a real SMTP peer, and the
destination names notifyd keeps for itself."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from notifyd.config import Settings
from tests.channels.peers import Mailbox, SmtpServer
from tests.compat.conftest import Server, Start
from tests.support import wait_for


def _run(server: Server, accepted: dict[str, Any]) -> dict[str, Any]:
    [task] = accepted["tasks"]
    run: dict[str, Any] = server.client.get(f"/v1/tasks/{task['id']}").json()
    return run


def test_delay_is_visibly_scheduled_and_can_be_cancelled(server: Server) -> None:
    before = datetime.now(UTC)
    answer = server.client.post(
        "/v1/notifications", json={"to": "me", "message": "later", "delay": "2h"}
    )
    assert answer.status_code == 202, answer.text
    accepted = answer.json()
    send_at = datetime.fromisoformat(accepted["send_at"])
    assert timedelta(hours=1, minutes=59) < send_at - before < timedelta(hours=2, minutes=1)
    run = _run(server, accepted)
    assert run["status"] == "queued" and run["scheduled"] is True
    assert datetime.fromisoformat(run["next_attempt_at"]) == send_at
    note = server.client.get(f"/v1/notifications/{accepted['id']}").json()
    assert datetime.fromisoformat(note["send_at"]) == send_at and note["priority"] == 3
    cancelled = server.client.post(f"/v1/tasks/{run['id']}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert _run(server, accepted)["status"] == "cancelled"


@pytest.mark.parametrize(
    "fields",
    [
        {"delay": "31d"},
        {"delay": 30 * 86400 + 1},
        {"delay": "soon"},
        {"delay": -5},
        {"send_at": (datetime.now(UTC) + timedelta(days=31)).isoformat()},
        {"send_at": "2030-01-01T00:00:00"},
        {"send_at": "2030-01-01T00:00:00Z", "delay": "1h"},
        {"priority": 0},
        {"priority": 6},
    ],
)
def test_refused_schedules_and_priorities(server: Server, fields: dict[str, Any]) -> None:
    answer = server.client.post("/v1/notifications", json={"to": "me", "message": "x", **fields})
    assert answer.status_code == 422, answer.text


def test_send_at_in_the_past_goes_at_once_and_a_due_run_is_delivered(server: Server) -> None:
    past = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    first = server.client.post(
        "/v1/notifications", json={"to": "me", "message": "now", "send_at": past, "priority": 5}
    )
    assert first.status_code == 202 and first.json()["send_at"] is None
    soon = server.client.post("/v1/notifications", json={"to": "me", "message": "soon", "delay": 1})
    assert soon.status_code == 202
    lines = server.delivered(2)
    assert {(line["message"], line["priority"]) for line in lines} == {("now", 5), ("soon", 3)}
    run = wait_for(
        lambda: (r := _run(server, soon.json()))["status"] == "succeeded" and r,
        what="the scheduled run to succeed",
    )
    assert run["scheduled"] is False


def test_priority_reaches_email_headers(start: Start) -> None:
    mailbox = Mailbox()
    with SmtpServer(mailbox) as smtp:
        server = start(smtp={"host": "127.0.0.1", "port": smtp.port, "security": "none"})
        for priority in (5, 4, 3, 2, 1):
            answer = server.client.post(
                "/v1/notifications",
                json={
                    "channel": "email",
                    "to": f"p{priority}@example.org",
                    "message": "x",
                    "priority": priority,
                },
            )
            assert answer.status_code == 202, answer.text
        wait_for(lambda: len(mailbox.messages) == 5, what="five emails")
    headers = {str(m["To"]): (m.get("X-Priority"), m.get("Importance")) for m in mailbox.messages}
    assert headers == {
        "p5@example.org": ("1 (Highest)", "high"),
        "p4@example.org": ("2 (High)", "high"),
        "p3@example.org": (None, None),
        "p2@example.org": ("4 (Low)", "low"),
        "p1@example.org": ("5 (Lowest)", "low"),
    }


@pytest.mark.parametrize("name", ["v1", "ui", "docs", "healthz", "metrics", "message", "Static"])
def test_reserved_destination_names_are_refused(name: str) -> None:
    with pytest.raises(ValidationError, match="reserved"):
        Settings(destinations={name: {"channel": "log", "to": "x"}})
