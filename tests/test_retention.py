"""Automatic pruning keeps recent and unfinished runs and removes old finished ones."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, update

from notifyd.db import write_connection
from notifyd.models import Notification
from notifyd.notifications.retention import RetentionLoop, count_prunable, prune_chunk
from notifyd.timeutil import utcnow
from notifyd.tracking import TaskBatch, TaskRegistry, Tracker, admin
from notifyd.tracking.admin import RUNS, PruneResult
from notifyd.tracking.clock import new_id

NOTIFICATIONS = Notification.__table__  # type: ignore[attr-defined]
pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _count(engine: Engine, model: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(model)).scalar_one())


def _noop() -> None:
    return None


@pytest.fixture
async def tracker(migrated: Engine) -> AsyncIterator[Tracker]:
    """A tracker without a dispatcher, with the ``noop`` task registered."""
    registry = TaskRegistry()
    registry.register(_noop, "noop")
    tracker = Tracker(migrated, registry, run_dispatcher=False)
    await tracker.start()
    yield tracker
    await tracker.stop()


async def _add_runs(tracker: Tracker, count: int) -> list[str]:
    batch = TaskBatch(tracker)
    ids = [batch.add_run(_noop) for _ in range(count)]
    await batch.commit()
    return ids


async def test_prune_once_removes_only_old_finished_runs(
    migrated: Engine, tracker: Tracker
) -> None:
    old_done, old_queued, new_done = await _add_runs(tracker, 3)
    long_ago = utcnow() - timedelta(days=40)
    with write_connection(migrated) as conn:
        for run_id, status, finished in (
            (old_done, "succeeded", long_ago),
            (old_queued, "queued", None),
            (new_done, "failed", utcnow()),
        ):
            conn.execute(
                update(RUNS)
                .where(RUNS.c.id == run_id)
                .values(status=status, finished_at=finished, created_at=long_ago)
            )
    result = await RetentionLoop(tracker, retention_days=30).prune_once()
    assert result.runs == 1
    with migrated.connect() as conn:
        left = set(conn.execute(select(RUNS.c.id)).scalars())
    assert left == {old_queued, new_done}
    assert _count(migrated, RUNS) == 2 and _count(migrated, Notification) == 0


async def test_prune_goes_in_small_transactions_until_nothing_is_left(
    migrated: Engine, tracker: Tracker
) -> None:
    await _add_runs(tracker, 5)
    with write_connection(migrated) as conn:
        conn.execute(
            update(RUNS).values(status="succeeded", finished_at=utcnow() - timedelta(days=2))
        )
    chunks: list[PruneResult] = []

    def one_chunk() -> PruneResult:
        with write_connection(migrated) as conn:
            chunks.append(prune_chunk(conn, older_than=timedelta(days=1), now=utcnow(), limit=2))
        return chunks[-1]

    total = admin.prune(one_chunk)
    assert total.runs == 5
    assert [c.runs for c in chunks] == [2, 2, 1, 0]
    assert _count(migrated, RUNS) == 0


def _note_with_runs(engine: Engine, created: Any, runs: list[tuple[str, Any]]) -> str:
    """A notification created at ``created`` with runs in these (status, finished) states;
    its id, which encodes its creation time as every stored id does."""
    note_id = new_id("ntf", at=created)
    with write_connection(engine) as conn:
        conn.execute(
            NOTIFICATIONS.insert().values(
                id=note_id, channel="log", message="m", recipients=["a"], created_at=created
            )
        )
        for status, finished in runs:
            conn.execute(
                RUNS.insert().values(
                    id=new_id("run", at=created),
                    task_name="notifyd.deliver",
                    ref=note_id,
                    args={},
                    status=status,
                    attempts=1,
                    max_attempts=1,
                    interruptions=0,
                    created_at=created,
                    updated_at=created,
                    finished_at=finished,
                )
            )
    return note_id


def test_counting_what_a_prune_would_remove_matches_the_prune_and_takes_no_lock(
    settings: Any, migrated: Engine
) -> None:
    from notifyd.db import make_engine

    now = utcnow()
    old = now - timedelta(days=40)
    gone = _note_with_runs(migrated, old, [("succeeded", old)])
    kept = _note_with_runs(migrated, old, [("failed", old), ("queued", None)])
    new = _note_with_runs(migrated, now, [("succeeded", now)])
    age = timedelta(days=30)
    impatient = make_engine(settings.db_url, busy_timeout_ms=50)
    # A server holds the write lock meanwhile: counting must not need it.
    with write_connection(migrated), impatient.connect() as conn:
        counted = count_prunable(conn, older_than=age, now=now)
    impatient.dispose()

    def one_chunk() -> PruneResult:
        with write_connection(migrated) as conn:
            return prune_chunk(conn, older_than=age, now=now)

    removed = admin.prune(one_chunk)
    assert (counted.runs, counted.extra["notifications"]) == (2, 1)
    assert (removed.runs, removed.extra["notifications"]) == (2, 1)
    with migrated.connect() as conn:
        left = set(conn.execute(select(NOTIFICATIONS.c.id)).scalars())
    assert gone not in left
    assert {kept, new} <= left
