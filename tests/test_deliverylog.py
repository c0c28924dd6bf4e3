"""The server log tells of delivery: a failed attempt at WARNING, a run failed for good at ERROR,
a delivery at DEBUG; Apprise's own lines (a client's 422 among them) at DEBUG only."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from notifyd.notifications.deliverylog import observe_attempt, quiet_apprise
from notifyd.tracking.admin import ClaimedRun
from notifyd.tracking.models import Outcome, RunStatus
from notifyd.tracking.outcomes import AttemptResult
from tests.support import wait_for

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
RUN = ClaimedRun(
    id="run_1",
    task_name="deliver",
    args={},
    queue="webhook",
    attempt=2,
    max_attempts=8,
    interruptions=0,
    started_at=NOW,
    label="https://hooks.example.org/********",
)


def _result(status: RunStatus, outcome: Outcome, error: str | None = None) -> AttemptResult:
    return AttemptResult(
        run_id=RUN.id,
        attempt=RUN.attempt,
        started_at=NOW,
        outcome=outcome,
        finished_at=NOW,
        duration_ms=12.5,
        status=status,
        next_attempt_at=NOW + timedelta(minutes=5) if status == RunStatus.retrying else None,
        error_type="TransientDeliveryError" if error else None,
        error_message=error,
    )


def _delivery_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "notifyd.delivery"]


def test_a_failed_attempt_is_a_warning_with_its_fields(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="notifyd")
    observe_attempt(RUN, _result(RunStatus.retrying, Outcome.transient_error, "503 busy"))
    [record] = _delivery_records(caplog)
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    for text in ("run_1", "webhook", "https://hooks.example.org/********", "attempt 2 of 8"):
        assert text in message
    assert "transient_error" in message and "503 busy" in message
    assert "2026-12-01T10:05:00+00:00" in message
    fields = vars(record)
    assert fields["run_id"] == "run_1" and fields["channel"] == "webhook"
    assert fields["recipient"] == "https://hooks.example.org/********"
    assert fields["outcome"] == "transient_error" and fields["status"] == "retrying"
    assert fields["error"] == "TransientDeliveryError: 503 busy"
    assert fields["next_attempt_at"] == "2026-12-01T10:05:00+00:00"


def test_a_run_failed_for_good_is_an_error_and_a_delivery_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="notifyd")
    observe_attempt(RUN, _result(RunStatus.failed, Outcome.permanent_error, "410 gone"))
    observe_attempt(RUN, _result(RunStatus.succeeded, Outcome.succeeded))
    failed, delivered = _delivery_records(caplog)
    assert failed.levelno == logging.ERROR and "failed for good" in failed.getMessage()
    assert vars(failed)["next_attempt_at"] is None
    assert delivered.levelno == logging.DEBUG and "delivered run run_1" in delivered.getMessage()


def test_at_info_a_delivery_is_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="notifyd")
    observe_attempt(RUN, _result(RunStatus.succeeded, Outcome.succeeded))
    assert _delivery_records(caplog) == []


def test_a_peer_cannot_forge_log_lines(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="notifyd")
    forged = "busy\n2026-12-01 INFO notifyd: all fine\r\x1b[2K\u2028"
    observe_attempt(RUN, _result(RunStatus.retrying, Outcome.transient_error, forged))
    [record] = _delivery_records(caplog)
    message = record.getMessage()
    assert not any(c in message for c in "\n\r\x1b\u2028")
    assert "busy\\n2026-12-01 INFO" in message


def test_the_server_logs_each_delivery(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="notifyd")
    refused = client.post(
        "/v1/notifications",
        json={"channel": "webhook", "to": "http://127.0.0.1:9/hook?token=s3cret", "message": "m"},
    ).json()["tasks"][0]["id"]
    delivered = client.post("/v1/notifications", json={"to": "alice", "message": "m"}).json()[
        "tasks"
    ][0]["id"]

    def logged(run_id: str) -> logging.LogRecord | None:
        found = [r for r in _delivery_records(caplog) if vars(r)["run_id"] == run_id]
        return found[0] if found else None

    failed = wait_for(lambda: logged(refused), what="the refused run's line")
    assert failed.levelno == logging.ERROR and vars(failed)["channel"] == "webhook"
    assert "SSRF" in failed.getMessage() and "s3cret" not in failed.getMessage()
    ok = wait_for(lambda: logged(delivered), what="the delivered run's line")
    assert ok.levelno == logging.DEBUG and vars(ok)["recipient"] == "alice"


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def root_lines() -> Iterator[_Lines]:
    """What a handler on the root logger (as ``serve`` configures) receives."""
    lines = _Lines()
    logging.getLogger().addHandler(lines)
    yield lines
    logging.getLogger().removeHandler(lines)


def test_a_refused_apprise_url_is_a_422_not_an_error_line(
    client: TestClient, root_lines: _Lines, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    answer = client.post(
        "/v1/notifications",
        json={"channel": "apprise", "to": "foo://secret-token@bar", "message": "m"},
    )
    assert answer.status_code == 422
    from_apprise = [r for r in root_lines.records if r.name.startswith("apprise")]
    assert from_apprise == []  # at INFO, Apprise's "Unparseable URL" is not shown at all


def test_apprise_lines_go_on_at_debug(root_lines: _Lines, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    quiet_apprise()
    quiet_apprise()  # idempotent: one line, not two
    logging.getLogger("apprise").error("Could not load Slack URL: slack://x")
    [line] = [r for r in root_lines.records if r.name == "apprise"]
    assert line.levelno == logging.DEBUG and "slack://x" in line.getMessage()
