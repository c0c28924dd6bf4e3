"""Automatic pruning keeps recent and unfinished runs and removes old finished ones."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, update

from notifyd.db import write_connection
from notifyd.models import Notification
from notifyd.notifications.retention import RetentionLoop, prune_chunk
from notifyd.timeutil import utcnow
from notifyd.tracking import TaskBatch, TaskRegistry, Tracker, admin
from notifyd.tracking.admin import RUNS, PruneResult

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
