"""The metrics' own rules: final failures and delivery latency by channel, bounded error
classes, and a scrape that reads the tally and an index, never every run."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, event, insert

from notifyd.metrics import MAX_ERROR_CLASSES, Metrics
from notifyd.tracking.admin import ClaimedRun
from notifyd.tracking.models import Outcome, RunStatus, runs
from notifyd.tracking.outcomes import AttemptResult

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
RUN = ClaimedRun(
    id="run_1",
    task_name="deliver",
    args={},
    queue="webhook",
    attempt=1,
    max_attempts=3,
    interruptions=0,
    started_at=NOW,
    created_at=NOW - timedelta(seconds=90),
)


def _result(status: RunStatus, error_type: str | None = None) -> AttemptResult:
    outcome = Outcome.succeeded if status is RunStatus.succeeded else Outcome.permanent_error
    return AttemptResult(
        run_id=RUN.id,
        attempt=1,
        started_at=NOW,
        outcome=outcome,
        finished_at=NOW,
        duration_ms=5.0,
        status=status,
        error_type=error_type,
    )


def _scrape(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(metrics.render().decode())
        for sample in family.samples
    }


def _metrics(engine: Engine) -> Metrics:
    return Metrics(engine, in_flight=lambda: 0, clock=lambda: NOW)


def test_final_failures_by_channel_and_error_class_and_latency_of_deliveries(
    migrated: Engine,
) -> None:
    metrics = _metrics(migrated)
    metrics.observe_attempt(RUN, _result(RunStatus.succeeded))
    metrics.observe_attempt(RUN, _result(RunStatus.failed, "PermanentDeliveryError"))
    metrics.observe_attempt(RUN, _result(RunStatus.failed, "PermanentDeliveryError"))
    metrics.observe_attempt(RUN, _result(RunStatus.retrying, "TransientDeliveryError"))

    found = _scrape(metrics)
    failed = ("channel", "webhook"), ("error", "PermanentDeliveryError")
    assert found[("notifyd_runs_failed_total", failed)] == 2
    assert not [key for key in found if "TransientDeliveryError" in str(key)]  # not final
    latency = ("channel", "webhook"), ("le", "60.0")
    assert found[("notifyd_delivery_latency_seconds_bucket", latency)] == 0  # it took 90 s
    assert found[("notifyd_delivery_latency_seconds_count", (("channel", "webhook"),))] == 1
    assert found[("notifyd_delivery_latency_seconds_sum", (("channel", "webhook"),))] == 90


def test_error_classes_are_bounded(migrated: Engine) -> None:
    metrics = _metrics(migrated)
    for number in range(MAX_ERROR_CLASSES + 20):
        metrics.observe_attempt(RUN, _result(RunStatus.failed, f"Error{number}"))
    errors = {
        dict(labels)["error"] for name, labels in _scrape(metrics) if name.endswith("failed_total")
    }
    assert len(errors) == MAX_ERROR_CLASSES + 1 and "other" in errors


def test_no_series_is_a_created_twin(migrated: Engine) -> None:
    metrics = _metrics(migrated)
    metrics.observe_attempt(RUN, _result(RunStatus.succeeded))
    names = {name for name, _labels in _scrape(metrics)}
    assert "notifyd_attempts_total" in names
    assert not [name for name in names if name.endswith("_created")]


def _fill(engine: Engine, count: int) -> None:
    statuses = ["succeeded"] * 8 + ["queued", "retrying", "failed", "running"]
    rows: list[dict[str, Any]] = [
        {
            "id": f"run_{number:08d}",
            "task_name": "deliver",
            "queue": ("webhook", "email", "log")[number % 3],
            "args": {},
            "status": statuses[number % len(statuses)],
            "attempts": 1,
            "max_attempts": 3,
            "interruptions": 0,
            "created_at": NOW - timedelta(seconds=number),
            "updated_at": NOW,
            "next_attempt_at": NOW - timedelta(seconds=number % 500),
        }
        for number in range(count)
    ]
    with engine.begin() as conn:
        conn.execute(insert(runs), rows)
        conn.exec_driver_sql("ANALYZE")


def test_a_scrape_never_scans_the_runs_or_the_attempts(migrated: Engine) -> None:
    _fill(migrated, 5000)
    metrics = _metrics(migrated)
    statements: list[tuple[str, Any]] = []

    def seen(conn: Any, cursor: Any, statement: str, parameters: Any, *rest: Any) -> None:
        statements.append((statement, parameters))

    event.listen(migrated, "before_cursor_execute", seen)
    try:
        found = _scrape(metrics)
    finally:
        event.remove(migrated, "before_cursor_execute", seen)

    assert found[("notifyd_runs_due", (("channel", "webhook"),))] > 0
    selects = [(s, p) for s, p in statements if s.lstrip().upper().startswith("SELECT")]
    assert selects
    with migrated.connect() as conn:
        for statement, parameters in selects:
            plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()
            details = [str(row[-1]) for row in plan]
            scans = [d for d in details if re.search(r"\bSCAN (task_run|attempt)\b(?!_)", d)]
            assert not scans, (statement, details)
