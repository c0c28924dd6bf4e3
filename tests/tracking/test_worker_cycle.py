"""The worker's claim and outcome batches, on both stores: what they take, what they write, and
on PostgreSQL that each is one statement (one round trip) walking the due index."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, select

from notifyd.db import write_connection
from notifyd.tracking import admin
from notifyd.tracking.admin import ATTEMPTS, RUNS
from notifyd.tracking.admin.worker_pg import CLAIM_SQL
from notifyd.tracking.models import Outcome, RunStatus
from notifyd.tracking.outcomes import AttemptResult

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def _add_runs(engine: Engine, *specs: tuple[str, str | None, str, float]) -> None:
    """Runs of (id, queue, status, seconds before NOW they became due)."""
    rows = [
        {
            "id": run_id,
            "task_name": "t",
            "queue": queue,
            "label": f"label {run_id}",
            "args": {"n": index, "text": "é"},
            "status": status,
            "attempts": 1 if status == "retrying" else 0,
            "max_attempts": 5,
            "interruptions": 0,
            "created_at": NOW - timedelta(hours=1),
            "updated_at": NOW - timedelta(hours=1),
            "next_attempt_at": NOW - timedelta(seconds=ago),
        }
        for index, (run_id, queue, status, ago) in enumerate(specs)
    ]
    with write_connection(engine) as conn:
        conn.execute(RUNS.insert(), rows)


def _statements(engine: Engine) -> list[str]:
    seen: list[str] = []

    def spy(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", spy)
    return seen


def test_a_claim_takes_due_runs_in_due_order_within_the_queues_caps(store: Engine) -> None:
    _add_runs(
        store,
        ("run_a1", "a", "queued", 50),
        ("run_b1", "b", "queued", 40),
        ("run_b2", "b", "retrying", 30),
        ("run_c1", None, "retrying", 20),
        ("run_c2", "c", "queued", 10),
        ("run_late", None, "queued", -60),  # not due yet
        ("run_run", None, "running", 60),
    )
    with write_connection(store) as conn:
        now, claimed = admin.claim_runs(
            conn, now=NOW, limit=3, worker="w1", lease_seconds=30, queue_free={"a": 0, "b": 1}
        )
    assert now == NOW
    assert [run.id for run in claimed] == ["run_b1", "run_c1", "run_c2"]
    assert [run.attempt for run in claimed] == [1, 2, 1]
    first = claimed[0]
    assert first.args == {"n": 1, "text": "é"} and first.label == "label run_b1"
    assert first.started_at == NOW and first.created_at == NOW - timedelta(hours=1)
    with store.connect() as conn:
        runs = {row.id: row for row in conn.execute(select(RUNS))}
        attempts = conn.execute(select(ATTEMPTS).order_by(ATTEMPTS.c.run_id)).all()
    for run_id in ("run_b1", "run_c1", "run_c2"):
        run = runs[run_id]
        assert (run.status, run.worker) == ("running", "w1")
        assert run.lease_expires_at == NOW + timedelta(seconds=30)
        assert run.started_at == run.updated_at == run.attempt_started_at == NOW
    assert {run_id: runs[run_id].status for run_id in ("run_a1", "run_b2", "run_late")} == {
        "run_a1": "queued",
        "run_b2": "retrying",
        "run_late": "queued",
    }
    assert attempts == []  # an attempt's row is written when it ends
    with store.connect() as conn:
        under_way = [admin.get_run(conn, run.id).attempts[-1] for run in claimed]
    assert [(a.number, a.worker, a.outcome, a.started_at, a.finished_at) for a in under_way] == [
        (1, "w1", Outcome.running, NOW, None),
        (2, "w1", Outcome.running, NOW, None),
        (1, "w1", Outcome.running, NOW, None),
    ]


def test_a_batch_of_outcomes_moves_only_the_runs_this_worker_holds(store: Engine) -> None:
    _add_runs(store, ("run_ok", None, "queued", 5), ("run_again", None, "queued", 4))
    _add_runs(store, ("run_lost", None, "queued", 3))
    with write_connection(store) as conn:
        _, claimed = admin.claim_runs(conn, now=NOW, limit=3, worker="w1", lease_seconds=30)
    assert len(claimed) == 3
    later = NOW + timedelta(seconds=2)
    with write_connection(store) as conn:  # rescued and taken by another worker meanwhile
        admin.interrupt_runs(
            conn, now=later, reason="lease expired", error_type="LeaseExpired", run_ids=["run_lost"],
            worker="w1",
        )  # fmt: skip
        _, taken = admin.claim_runs(conn, now=later, limit=1, worker="w2", lease_seconds=30)
        assert [run.id for run in taken] == ["run_lost"]

    def result(run_id: str, status: RunStatus, outcome: Outcome, **extra: Any) -> AttemptResult:
        return AttemptResult(
            run_id=run_id,
            attempt=1,
            started_at=NOW,
            finished_at=later,
            duration_ms=2000.0,
            outcome=outcome,
            status=status,
            **extra,
        )

    results = [
        result("run_ok", RunStatus.succeeded, Outcome.succeeded, response={"sent": ["é", 1]}),
        result(
            "run_again",
            RunStatus.retrying,
            Outcome.transient_error,
            next_attempt_at=later + timedelta(seconds=10),
            error_type="Timeout",
            error_message="slow",
            retry_delay_seconds=10.0,
        ),
        result("run_lost", RunStatus.succeeded, Outcome.succeeded),
    ]
    with write_connection(store) as conn:
        held = admin.finish_attempts(conn, results, worker="w1")
    assert held == 2
    with store.connect() as conn:
        runs = {row.id: row for row in conn.execute(select(RUNS))}
        attempts = {row.run_id: row for row in conn.execute(select(ATTEMPTS))}
        lost_attempts = admin.get_run(conn, "run_lost").attempts
    ok, again, lost = runs["run_ok"], runs["run_again"], runs["run_lost"]
    assert (ok.status, ok.finished_at, ok.worker, ok.lease_expires_at) == (
        "succeeded",
        later,
        None,
        None,
    )
    assert ok.last_error is None and ok.updated_at == later and ok.attempt_started_at is None
    assert attempts["run_ok"].started_at == NOW and attempts["run_ok"].worker == "w1"
    assert (again.status, again.next_attempt_at, again.finished_at) == (
        "retrying",
        later + timedelta(seconds=10),
        None,
    )
    assert again.last_error and "slow" in again.last_error
    assert (lost.status, lost.worker) == ("running", "w2")
    assert attempts["run_ok"].response == {"sent": ["é", 1]}
    assert attempts["run_ok"].outcome == "succeeded" and attempts["run_ok"].finished_at == later
    assert attempts["run_ok"].duration_ms == 2000.0
    assert (attempts["run_again"].error_type, attempts["run_again"].retry_delay_seconds) == (
        "Timeout",
        10.0,
    )
    # The rescuer's record of attempt 1 stands; attempt 2 is the other worker's, under way.
    assert [(a.number, a.worker, a.outcome) for a in lost_attempts] == [
        (1, "w1", Outcome.interrupted),
        (2, "w2", Outcome.running),
    ]


@pytest.mark.postgres
def test_on_postgresql_a_claim_and_an_outcome_batch_are_one_statement_each(
    postgres_url: str,
) -> None:
    from notifyd.db import make_engine, upgrade

    engine = make_engine(postgres_url)
    try:
        upgrade(engine)
        _add_runs(engine, *((f"run_{i:03}", None, "queued", 10) for i in range(20)))
        seen = _statements(engine)
        with write_connection(engine) as conn:
            before = len(seen)
            now, claimed = admin.claim_runs(conn, limit=8, worker="w1", lease_seconds=30)
            assert len(seen) - before == 1  # the database's clock is read inside the claim
            assert now is not None and len(claimed) == 8
            before = len(seen)
            results = [
                AttemptResult(
                    run_id=run.id,
                    attempt=run.attempt,
                    started_at=run.started_at,
                    finished_at=now,
                    duration_ms=1.0,
                    outcome=Outcome.succeeded,
                    status=RunStatus.succeeded,
                )
                for run in claimed
            ]
            assert admin.finish_attempts(conn, results, worker="w1") == 8
            assert len(seen) - before == 1
            written = conn.execute(select(func.count()).select_from(ATTEMPTS)).scalar_one()
            assert written == 8
        with engine.connect() as conn:
            plan = "\n".join(
                row[0]
                for row in conn.exec_driver_sql(
                    "EXPLAIN " + CLAIM_SQL,
                    {
                        "now": None,
                        "full": [],
                        "fetch": 8,
                        "capped": [],
                        "free": [],
                        "limit": 8,
                        "worker": "w",
                        "lease": 30.0,
                    },
                )
            )
        # Each due state walks the due index in due order (no sort of every due run).
        assert plan.count("Index Scan using ix_task_run_due") == 2, plan
    finally:
        engine.dispose()


def test_without_caps_a_claim_takes_every_due_state_in_due_order(store: Engine) -> None:
    _add_runs(
        store,
        ("run_a1", "a", "queued", 50),
        ("run_b2", "b", "retrying", 30),
        ("run_b1", "b", "queued", 40),
        ("run_c1", None, "retrying", 20),
        ("run_c2", "c", "queued", 10),
    )
    with write_connection(store) as conn:
        _, claimed = admin.claim_runs(conn, now=NOW, limit=4, worker="w1", lease_seconds=30)
    assert [run.id for run in claimed] == ["run_a1", "run_b1", "run_b2", "run_c1"]
    assert [run.attempt for run in claimed] == [1, 1, 2, 2]
    assert claimed[2].args == {"n": 1, "text": "é"}
    assert claimed[0].created_at == NOW - timedelta(hours=1)
    with store.connect() as conn:
        statuses = {row.id: row.status for row in conn.execute(select(RUNS.c.id, RUNS.c.status))}
        begun = dict(
            conn.execute(
                select(RUNS.c.id, RUNS.c.attempt_started_at).where(
                    RUNS.c.attempt_started_at.is_not(None)
                )
            ).all()
        )
    assert statuses["run_c2"] == "queued"
    assert begun == dict.fromkeys(["run_a1", "run_b1", "run_b2", "run_c1"], NOW)
