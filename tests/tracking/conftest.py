"""Fixtures for the tracking suite: a migrated store (SQLite and PostgreSQL), a fake clock, a tracker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, Row, select, update

from notifyd.db import make_engine, upgrade, write_connection
from notifyd.tracking import DispatcherConfig, TaskBatch, TaskRegistry, Tracker
from notifyd.tracking.admin import ATTEMPTS, RUNS
from notifyd.tracking.retry import RetryPolicies, RetryPolicy


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def store(db_url: str) -> Iterator[Engine]:
    """A migrated store on SQLite or PostgreSQL."""
    engine = make_engine(db_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def engine(tmp_path: Any) -> Iterator[Engine]:
    """The tracking tables alone, on a SQLite file (no migrations: the bulk paths' tests)."""
    from sqlalchemy import create_engine

    from notifyd.tracking import schema

    engine = create_engine(f"sqlite:///{tmp_path / 'rows.db'}")
    schema.install(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def registry() -> TaskRegistry:
    return TaskRegistry()


TrackerFactory = Callable[..., Any]


@pytest.fixture
def make_tracker(store: Engine, registry: TaskRegistry, clock: FakeClock) -> TrackerFactory:
    """Build a tracker with fast polling and a 3-attempt policy (10 s, then 60 s, no jitter);
    with ``run_dispatcher=False`` it only records runs (nothing executes them)."""

    @asynccontextmanager
    async def factory(
        *,
        retry: RetryPolicy | RetryPolicies | None = None,
        run_dispatcher: bool = True,
        **config: Any,
    ) -> AsyncIterator[Tracker]:
        policy = retry or RetryPolicy(max_attempts=3, schedule=(10, 60))
        settings = {"poll_seconds": 0.02, "sweep_seconds": 0.05, "lease_seconds": 30.0, **config}
        tracker = Tracker(
            store,
            registry,
            config=DispatcherConfig(**settings),
            retry=policy if isinstance(policy, RetryPolicies) else RetryPolicies(policy),
            clock=clock,
            run_dispatcher=run_dispatcher,
        )
        await tracker.start()
        try:
            yield tracker
        finally:
            await tracker.stop(grace_seconds=1)

    return factory


async def enqueue(tracker: Tracker, func: Callable[..., Any], *args: Any, **kwargs: Any) -> str:
    """Commit one run of ``func`` and return its id."""
    batch = TaskBatch(tracker)
    run_id = batch.add_task(func, *args, **kwargs)
    await batch.commit()
    return run_id


def load_run(engine: Engine, run_id: str) -> Row[Any]:
    """The run's row, every column."""
    with engine.connect() as conn:
        return conn.execute(select(RUNS).where(RUNS.c.id == run_id)).one()


def due_index_definition(engine: Engine) -> str:
    """The store's own text of ``ix_task_run_due`` (its WHERE clause tells a partial index)."""
    query = (
        "SELECT sql FROM sqlite_master WHERE name = 'ix_task_run_due'"
        if engine.dialect.name == "sqlite"
        else "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_task_run_due'"
        " AND schemaname = current_schema()"
    )
    with engine.connect() as conn:
        return str(conn.exec_driver_sql(query).scalar_one())


def load_attempts(engine: Engine, run_id: str) -> list[Row[Any]]:
    """The run's attempt rows, oldest first."""
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(ATTEMPTS).where(ATTEMPTS.c.run_id == run_id).order_by(ATTEMPTS.c.number)
            ).all()
        )


async def wait_until(check: Callable[[], bool], limit: float = 10.0) -> None:
    """Poll ``check`` (which may read the store) until it holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not await asyncio.to_thread(check):
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


async def wait_status(engine: Engine, run_id: str, status: str, limit: float = 10.0) -> Row[Any]:
    await wait_until(lambda: load_run(engine, run_id).status == status, limit)
    return load_run(engine, run_id)


def mark_orphaned(
    engine: Engine,
    run_id: str,
    *,
    at: datetime,
    attempts: int = 1,
    interruptions: int = 0,
    crashes: int = 0,
) -> None:
    """Make a run look claimed by a worker that died: running, its lease expired, an attempt
    under way (whose row is written only when it ends)."""
    with write_connection(engine) as conn:
        conn.execute(
            update(RUNS)
            .where(RUNS.c.id == run_id)
            .values(
                status="running",
                attempts=attempts,
                interruptions=interruptions,
                crashes=crashes,
                worker="dead-worker",
                lease_expires_at=at - timedelta(seconds=1),
                started_at=at,
                attempt_started_at=at,
            )
        )
