"""Run operations on the store: retry gives a fresh start; refusals name the state; moves
follow the declared transitions."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event, select, update

from notifyd.db import make_engine, upgrade, write_connection
from notifyd.timeutil import utcnow
from notifyd.tracking import admin
from notifyd.tracking.admin import RUNS, RunFilter
from notifyd.tracking.errors import InvalidTransition, RunNotFound
from notifyd.tracking.models import TRANSITIONS, RunStatus, allowed_moves
from notifyd.tracking.retry import RetryPolicies, RetryPolicy

EIGHT = RetryPolicies(RetryPolicy(max_attempts=8))


@pytest.fixture
def store(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def _insert_run(engine: Engine, run_id: str, **values: object) -> None:
    now = utcnow()
    row = {
        "id": run_id,
        "task_name": "t",
        "args": {},
        "status": "failed",
        "attempts": 8,
        "max_attempts": 8,
        "interruptions": 3,
        "crashes": 4,
        "created_at": now,
        "updated_at": now,
        "finished_at": now,
        **values,
    }
    with write_connection(engine) as conn:
        conn.execute(RUNS.insert(), row)


def test_retry_starts_a_run_afresh(store: Engine) -> None:
    _insert_run(store, "run_a")
    with write_connection(store) as conn:
        admin.retry_run(conn, run_id="run_a", now=utcnow(), policies=EIGHT)
    with store.connect() as conn:
        run = conn.execute(select(RUNS).where(RUNS.c.id == "run_a")).one()
    assert run.status == "queued" and run.finished_at is None
    assert (run.max_attempts, run.interruptions, run.crashes) == (16, 0, 0)


def test_wrong_states_and_unknown_ids_are_refused(store: Engine) -> None:
    _insert_run(store, "run_b", status="running", finished_at=None)
    with write_connection(store) as conn, pytest.raises(InvalidTransition, match="is running"):
        admin.retry_run(conn, run_id="run_b", now=utcnow(), policies=EIGHT)
    with (
        write_connection(store) as conn,
        pytest.raises(InvalidTransition, match="queued or retrying"),
    ):
        admin.cancel_run(conn, run_id="run_b", now=utcnow())
    with write_connection(store) as conn, pytest.raises(RunNotFound):
        admin.cancel_run(conn, run_id="run_nope", now=utcnow())
    with write_connection(store) as conn, pytest.raises(InvalidTransition, match="can be retried"):
        admin.retry_runs(
            conn,
            selection=RunFilter(statuses=(RunStatus.running,)),
            now=utcnow(),
            policies=EIGHT,
        )


def test_prune_never_takes_a_run_that_is_no_longer_finished(store: Engine) -> None:
    old = utcnow() - timedelta(days=60)
    _insert_run(store, "run_c", finished_at=old)
    with write_connection(store) as conn:
        # As if an operator's retry landed between prune's select and its delete.
        conn.execute(update(RUNS).where(RUNS.c.id == "run_c").values(status="queued"))
        removed = admin.prune_chunk(conn, older_than=timedelta(days=30), now=utcnow())
    assert removed == 0


def test_a_retrying_run_retried_runs_now_without_a_fresh_budget(store: Engine) -> None:
    later = utcnow() + timedelta(hours=2)
    _insert_run(
        store, "run_d", status="retrying", attempts=2, finished_at=None, next_attempt_at=later
    )
    now = utcnow()
    with write_connection(store) as conn:
        admin.retry_run(conn, run_id="run_d", now=now, policies=EIGHT)
    with store.connect() as conn:
        run = conn.execute(select(RUNS).where(RUNS.c.id == "run_d")).one()
    assert run.status == "queued" and run.next_attempt_at == now
    # The wait is not an attempt: the budget and the attempts made are as they were.
    assert (run.attempts, run.max_attempts, run.interruptions) == (2, 8, 3)


def test_transitions_are_declared_once_and_cover_every_state() -> None:
    moves = allowed_moves()
    assert moves[RunStatus.succeeded] == frozenset()
    assert moves[RunStatus.running] == {
        RunStatus.succeeded,
        RunStatus.retrying,
        RunStatus.failed,
    }
    assert moves[RunStatus.retrying] == {RunStatus.running, RunStatus.cancelled, RunStatus.queued}
    assert moves[RunStatus.failed] == moves[RunStatus.cancelled] == {RunStatus.queued}
    assert {t.name for t in TRANSITIONS} >= {"claim", "finish", "cancel", "retry", "retry now"}


@pytest.mark.parametrize("status", list(RunStatus))
def test_operators_move_runs_only_along_declared_transitions(
    store: Engine, status: RunStatus
) -> None:
    run_id = f"run_{status.value}"
    _insert_run(store, run_id, status=status.value, next_attempt_at=utcnow())
    for operation in (admin.retry_run, admin.cancel_run):
        with store.connect() as conn:
            before = conn.execute(select(RUNS.c.status).where(RUNS.c.id == run_id)).scalar_one()
        try:
            with write_connection(store) as conn:
                if operation is admin.retry_run:
                    admin.retry_run(conn, run_id=run_id, now=utcnow(), policies=EIGHT)
                else:
                    admin.cancel_run(conn, run_id=run_id, now=utcnow())
        except InvalidTransition:
            continue
        with store.connect() as conn:
            after = conn.execute(select(RUNS.c.status).where(RUNS.c.id == run_id)).scalar_one()
        assert RunStatus(after) in allowed_moves()[RunStatus(before)]


def test_claiming_walks_the_due_index_instead_of_sorting_every_due_run(
    migrated: Engine,
) -> None:

    statements: list[tuple[str, Any]] = []

    def spy(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM task_run" in statement:
            statements.append((statement, parameters))

    event.listen(migrated, "before_cursor_execute", spy)
    try:
        with write_connection(migrated) as conn:
            admin.claim_due(conn, now=utcnow(), limit=32, worker="w", lease_until=utcnow())
    finally:
        event.remove(migrated, "before_cursor_execute", spy)
    assert statements
    with migrated.connect() as conn:
        for statement, parameters in statements:
            plan = [
                row[3]
                for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
            ]
            assert any("ix_task_run_due" in step for step in plan), plan
            # Only ties on the due time are sorted, never the whole backlog.
            assert "USE TEMP B-TREE FOR ORDER BY" not in plan, plan


def test_since_and_until_select_by_creation_time_through_the_ids(store: Engine) -> None:
    from notifyd.tracking.clock import ID_CLOCK_SLACK, new_id

    start = utcnow().replace(microsecond=0) - timedelta(hours=1)
    times = [start + timedelta(seconds=s) for s in range(4)]
    for moment in times:
        _insert_run(store, new_id("run", at=moment), created_at=moment)
    # Stored before ids took their row's time: made on a clock a little behind the store's.
    lagging = times[3] + timedelta(seconds=30)
    _insert_run(store, new_id("run", at=lagging - ID_CLOCK_SLACK / 2), created_at=lagging)

    def count(**window: Any) -> int:
        with store.connect() as conn:
            return admin.count_runs(conn, RunFilter(**window))

    assert count(since=times[1]) == 4  # from its own millisecond on, the lagging one too
    assert count(until=times[1]) == 1
    assert count(since=times[1], until=times[3]) == 2
    assert count(since=lagging) == 1
    assert count(until=lagging) == 4
    assert count(since=times[3] + timedelta(milliseconds=1), until=lagging) == 0
