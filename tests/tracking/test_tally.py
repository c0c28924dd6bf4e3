"""The run tally: counts by queue and status stay exact through every operation, folded or not."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, select

from notifyd.db import write_connection
from notifyd.tracking import TaskBatch, TaskRegistry, TransientError, admin, leases
from notifyd.tracking.admin import RUNS, TALLY, RunFilter
from notifyd.tracking.clock import utcnow
from notifyd.tracking.models import RunStatus
from notifyd.tracking.retry import RetryPolicies, RetryPolicy
from tests.tracking.conftest import FakeClock, TrackerFactory, wait_until

pytestmark = pytest.mark.anyio


def _true_counts(engine: Engine) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    with engine.connect() as conn:
        rows = conn.execute(
            select(RUNS.c.queue, RUNS.c.status, func.count()).group_by(RUNS.c.queue, RUNS.c.status)
        ).all()
    for queue, status, count in rows:
        counts.setdefault(queue or "-", {})[status] = count
    return counts


def _tallied(engine: Engine) -> dict[str, dict[str, int]]:
    with engine.connect() as conn:
        return admin.stats(conn).by_queue


async def test_counts_follow_every_move_and_survive_folding(
    store: Engine, registry: TaskRegistry, make_tracker: TrackerFactory, clock: FakeClock
) -> None:
    @registry.task("ok")
    async def ok() -> None:
        return None

    @registry.task("flaky")
    async def flaky() -> None:
        raise TransientError("later")

    policies = RetryPolicies(RetryPolicy(max_attempts=1), {"b": RetryPolicy(max_attempts=3)})
    async with make_tracker(retry=policies) as tracker:
        batch = TaskBatch(tracker)
        done = [batch.add_run(ok, queue="a") for _ in range(5)]
        failing = [batch.add_run(flaky, queue="a") for _ in range(3)]
        retrying = [batch.add_run(flaky, queue="b") for _ in range(2)]
        later = [
            batch.add_run(ok, queue="b", run_at=clock() + timedelta(hours=1)) for _ in range(4)
        ]
        await batch.commit()
        ids = done + failing + retrying + later

        def settled() -> bool:
            with store.connect() as conn:
                busy = admin.count_runs(conn, RunFilter(statuses=(RunStatus.running,), queue=None))
                finished = admin.count_runs(
                    conn, RunFilter(statuses=(RunStatus.succeeded, RunStatus.failed))
                )
            return busy == 0 and finished == 8

        await wait_until(settled)
    with write_connection(store) as conn:
        admin.cancel_run(conn, run_id=later[0], now=clock())
        admin.retry_run(conn, run_id=failing[0], now=clock(), policies=policies)
    assert _tallied(store) == _true_counts(store)
    with write_connection(store) as conn:
        assert admin.compact_tally(conn) > 0
        folded_rows = conn.execute(select(func.count()).select_from(TALLY)).scalar_one()
    assert folded_rows <= 2 * len(RunStatus)
    assert _tallied(store) == _true_counts(store)
    clock.advance(86400 * 40)
    with write_connection(store) as conn:
        admin.prune_chunk(conn, older_than=timedelta(days=30), now=clock())
    assert _tallied(store) == _true_counts(store)
    with store.connect() as conn:
        total = sum(admin.stats(conn).by_status.values())
        assert total == conn.execute(select(func.count()).select_from(RUNS)).scalar_one()
    assert total < len(ids)


def test_folding_an_empty_or_folded_tally_changes_nothing(store: Engine) -> None:
    with write_connection(store) as conn:
        admin.compact_tally(conn)
        assert admin.compact_tally(conn) == 0
        assert admin.stats(conn).by_queue == {}


def _tally_rows(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(TALLY)).scalar_one())


# SQLite's alone: PostgreSQL folds at each sweep.
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_the_dispatcher_folds_the_tally_between_sweeps_on_sqlite(
    store: Engine, registry: TaskRegistry, make_tracker: TrackerFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setattr(leases, "FOLD_SECONDS", 0.01)

    @registry.task("ok")
    async def ok() -> None:
        return None

    async with make_tracker(sweep_seconds=3600.0) as tracker:  # no sweep folds meanwhile
        batch = TaskBatch(tracker)
        for _ in range(40):
            batch.add_task(ok)
        await batch.commit()
        # 40 runs, each +1 then -1/+1: 120 rows, folded without waiting for a sweep.
        await wait_until(lambda: _true_counts(store) == {"-": {"succeeded": 40}})
        await wait_until(lambda: _tally_rows(store) <= 3)
    assert _tallied(store) == {"-": {"succeeded": 40}}


def test_a_run_scheduled_for_later_is_not_the_oldest_waiting(store: Engine) -> None:
    now = utcnow()
    rows = [
        ("run_a", now - timedelta(minutes=5), now - timedelta(minutes=5)),  # waiting 5 min
        ("run_b", now - timedelta(hours=2), now + timedelta(hours=1)),  # scheduled: not yet due
    ]
    with write_connection(store) as conn:
        for run_id, created, due in rows:
            conn.execute(
                RUNS.insert().values(
                    id=run_id,
                    task_name="t",
                    args={},
                    status="queued",
                    attempts=0,
                    max_attempts=1,
                    interruptions=0,
                    created_at=created,
                    updated_at=created,
                    next_attempt_at=due,
                )
            )
    with store.connect() as conn:
        oldest = admin.stats(conn, now=now).oldest_queued_at
    assert oldest == rows[0][1]
