"""On PostgreSQL, claims, leases and sweeps take "now" from the database, so that processes whose
machine clocks differ agree (issue 13, item 8: a worker 40 s ahead re-ran live runs, one 40 s
behind claimed nothing). On SQLite (one machine) the process clock is used."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select, text, update

from notifyd.db import make_engine, upgrade, write_connection
from notifyd.tracking import DispatcherConfig, TaskRegistry, Tracker
from notifyd.tracking.admin import ATTEMPTS, RUNS
from notifyd.tracking.clock import StoreClock, utcnow
from tests.tracking.conftest import enqueue, load_run, wait_status

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]
SKEW = timedelta(seconds=40)
CONFIG = {"poll_seconds": 0.02, "sweep_seconds": 0.02, "lease_seconds": 30.0}


@pytest.fixture
def pg_store(postgres_url: str) -> Iterator[Engine]:
    engine = make_engine(postgres_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def _db_now(engine: Engine) -> datetime:
    with engine.connect() as conn:
        now: datetime = conn.execute(text("SELECT clock_timestamp()")).scalar_one()
    return now.astimezone(UTC)


def _tracker(
    engine: Engine, registry: TaskRegistry, skew: timedelta, *, run_dispatcher: bool = True
) -> Tracker:
    return Tracker(
        engine,
        registry,
        config=DispatcherConfig(**CONFIG),  # type: ignore[arg-type]
        clock=StoreClock(local=lambda: utcnow() + skew),
        run_dispatcher=run_dispatcher,
    )


async def test_a_worker_whose_clock_runs_ahead_leaves_live_runs_alone(
    pg_store: Engine,
) -> None:
    registry = TaskRegistry()
    ran: list[int] = []

    @registry.task("live")
    async def live() -> None:
        ran.append(1)

    accept_only = _tracker(pg_store, registry, timedelta(0), run_dispatcher=False)
    await accept_only.start()
    run_id = await enqueue(accept_only, live)
    await accept_only.stop()
    # Another worker holds it, its lease renewed a moment ago by the database's clock.
    now = _db_now(pg_store)
    with write_connection(pg_store) as conn:
        conn.execute(
            update(RUNS)
            .where(RUNS.c.id == run_id)
            .values(
                status="running",
                attempts=1,
                worker="live-worker",
                started_at=now,
                lease_expires_at=now + timedelta(seconds=30),
            )
        )
        conn.execute(
            ATTEMPTS.insert().values(
                run_id=run_id, number=1, worker="live-worker", started_at=now, outcome="running"
            )
        )
    ahead = _tracker(pg_store, registry, SKEW)
    await ahead.start()
    try:
        await asyncio.wait_for(ahead.dispatcher.passed(10), 10)
    finally:
        await ahead.stop(grace_seconds=1)
    assert load_run(pg_store, run_id).status == "running" and not ran


async def test_a_worker_whose_clock_runs_behind_claims_due_runs(pg_store: Engine) -> None:
    registry = TaskRegistry()

    @registry.task("due")
    async def due() -> None:
        pass

    accept_only = _tracker(pg_store, registry, timedelta(0), run_dispatcher=False)
    await accept_only.start()
    run_id = await enqueue(accept_only, due)
    await accept_only.stop()
    behind = _tracker(pg_store, registry, -SKEW)
    await behind.start()
    try:
        await wait_status(pg_store, run_id, "succeeded", limit=10)
    finally:
        await behind.stop(grace_seconds=1)


async def test_runs_are_stamped_with_the_stores_time(pg_store: Engine) -> None:
    registry = TaskRegistry()

    @registry.task("stamped")
    async def stamped() -> None:
        pass

    ahead = _tracker(pg_store, registry, SKEW, run_dispatcher=False)
    await ahead.start()
    run_id = await enqueue(ahead, stamped)
    await ahead.stop()
    with pg_store.connect() as conn:
        due = conn.execute(select(RUNS.c.next_attempt_at).where(RUNS.c.id == run_id)).scalar_one()
    assert abs(due - _db_now(pg_store)) < timedelta(seconds=10)
