"""How an attempt ended: success, a retry on the policy's schedule, or giving up."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from notifyd.tracking import outcomes
from notifyd.tracking.admin import ClaimedRun
from notifyd.tracking.errors import PermanentError, TransientError
from notifyd.tracking.models import Outcome, RunStatus
from notifyd.tracking.retry import RetryPolicy

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
POLICY = RetryPolicy(max_attempts=3, schedule=(10, 60))


def _run(attempt: int, interruptions: int = 0) -> ClaimedRun:
    return ClaimedRun(
        id="run_1",
        task_name="t",
        args={},
        queue=None,
        attempt=attempt,
        max_attempts=3,
        interruptions=interruptions,
        started_at=NOW,
    )


def test_a_transient_failure_goes_again_on_the_schedule() -> None:
    result = outcomes.failed(
        _run(1), TransientError("busy"), started=time.perf_counter(), now=NOW, policy=POLICY
    )
    assert (result.status, result.outcome) == (RunStatus.retrying, Outcome.transient_error)
    assert result.next_attempt_at == NOW + timedelta(seconds=10)
    assert result.error_type == "TransientError" and result.short_error == "TransientError: busy"


def test_the_last_attempt_and_a_permanent_error_give_up() -> None:
    last = outcomes.failed(
        _run(3), RuntimeError("x" * 5000), started=time.perf_counter(), now=NOW, policy=POLICY
    )
    assert last.status == RunStatus.failed and last.next_attempt_at is None
    assert len(last.error_message or "") == outcomes.MAX_ERROR
    permanent = outcomes.failed(
        _run(1), PermanentError("gone"), started=time.perf_counter(), now=NOW, policy=POLICY
    )
    assert (permanent.status, permanent.outcome) == (RunStatus.failed, Outcome.permanent_error)


def test_interrupted_attempts_are_not_charged() -> None:
    # Attempt 3 after two interruptions is only the first charged one: two more are left.
    result = outcomes.failed(
        _run(3, interruptions=2),
        TransientError("x"),
        started=time.perf_counter(),
        now=NOW,
        policy=POLICY,
    )
    assert result.status == RunStatus.retrying


def test_success_records_a_dict_answer_only() -> None:
    ok = outcomes.succeeded(_run(1), {"code": 250}, started=time.perf_counter(), now=NOW)
    assert (ok.status, ok.response) == (RunStatus.succeeded, {"code": 250})
    assert (
        outcomes.succeeded(_run(1), "text", started=time.perf_counter(), now=NOW).response is None
    )


def test_storable_keeps_a_clean_outcome_and_cleans_the_rest() -> None:
    clean = outcomes.succeeded(
        _run(1), {"file": "/var/log/x", "n": 1, "ok": True, "é": ["ü", None, 1.5]},
        started=time.perf_counter(), now=NOW,
    )  # fmt: skip
    assert outcomes.storable(clean) is clean
    for response, stored in [
        ({"a": "nul\x00here"}, {"a": "nul\\0here"}),
        ({"a": "lone \udcff surrogate"}, {"a": "lone ? surrogate"}),
        ({"a": float("nan")}, {"a": "nan"}),
        ({1: "int key"}, {"1": "int key"}),
        ({"a": ("tuple", 1)}, {"a": ["tuple", 1]}),
        ({"a": object}, {"a": "<class 'object'>"}),
    ]:
        result = outcomes.succeeded(_run(1), response, started=time.perf_counter(), now=NOW)
        assert outcomes.storable(result).response == stored
