"""Prefetch on SQLite and PostgreSQL: after a full claim, short runs are claimed beyond the free
slots, kept ready in memory, leased, and started as slots free."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Connection, Engine

from notifyd.models import Outcome, RunStatus
from notifyd.tracking import TaskRegistry, admin, dispatcher
from notifyd.tracking.tasks import TaskBatch
from notifyd.tracking.tracker import Tracker
from tests.tracking.conftest import TrackerFactory, load_attempts, load_run, wait_until

pytestmark = pytest.mark.anyio


@pytest.fixture
def claims(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[int, int]]]:
    """Every claim the dispatcher makes: (its limit, how many runs it took)."""
    made: list[tuple[int, int]] = []
    claim_runs = admin.claim_runs

    def recorded(conn: Connection, **kwargs: Any) -> Any:
        now, claimed = claim_runs(conn, **kwargs)
        made.append((kwargs["limit"], len(claimed)))
        return now, claimed

    monkeypatch.setattr(admin, "claim_runs", recorded)
    yield made


async def commit(tracker: Tracker, task: str, count: int) -> list[str]:
    """Commit ``count`` runs of ``task`` in one batch; their ids."""
    batch = TaskBatch(tracker)
    ids = [batch.add_run(task) for _ in range(count)]
    await batch.commit()
    return ids


def statuses(store: Engine, ids: list[str]) -> list[str]:
    return [load_run(store, run_id).status for run_id in ids]


async def test_a_backlog_of_short_runs_is_claimed_beyond_the_free_slots(
    store: Engine,
    registry: TaskRegistry,
    make_tracker: TrackerFactory,
    claims: list[tuple[int, int]],
) -> None:
    active = peak = 0
    executed: list[str] = []

    @registry.task("short")
    async def short(ctx: Any) -> None:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0)
        executed.append(ctx.run_id)
        active -= 1

    async with make_tracker(concurrency=2) as tracker:
        ids = await commit(tracker, "short", 40)
        await wait_until(lambda: set(statuses(store, ids)) == {"succeeded"}, limit=30)
    assert sorted(executed) == sorted(ids), "every run exactly once"
    assert peak <= 2, "prefetched runs wait for a slot"
    assert max(taken for _limit, taken in claims) > 2, claims
    # A claim takes more than the slots only after one that took all it could.
    for (limit, taken), (next_limit, _) in itertools.pairwise(claims):
        if next_limit > 2:
            assert taken >= limit, claims


async def test_slow_attempts_prefetch_nothing(
    store: Engine,
    registry: TaskRegistry,
    make_tracker: TrackerFactory,
    claims: list[tuple[int, int]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(dispatcher, "PREFETCH_BELOW_SECONDS", 0.02)
    monkeypatch.setattr(dispatcher, "_DURATION_WEIGHT", 1.0)  # the last attempt is the average
    finished = asyncio.Event()

    @registry.task("slow")
    async def slow() -> None:
        await asyncio.sleep(0.05)
        finished.set()

    async with make_tracker(concurrency=2) as tracker:
        ids = await commit(tracker, "slow", 12)
        await asyncio.wait_for(finished.wait(), 10)
        after_first = len(claims)
        await wait_until(lambda: set(statuses(store, ids)) == {"succeeded"}, limit=30)
    later = claims[after_first + 1 :]  # the claim under way as the first attempt ended aside
    assert later, "the backlog needed more claims"
    assert all(limit <= 2 for limit, _taken in later), claims


async def backlog(make_tracker: TrackerFactory, task: str, count: int) -> list[str]:
    """``count`` runs of ``task`` left queued, as a restart finds them: the next dispatcher's
    first claim follows no claim that took less than it could, so it prefetches."""
    async with make_tracker(run_dispatcher=False) as recorder:
        return await commit(recorder, task, count)


async def test_prefetched_runs_keep_their_lease_while_they_wait(
    store: Engine, registry: TaskRegistry, make_tracker: TrackerFactory
) -> None:
    opened = asyncio.Event()

    @registry.task("hold")
    async def hold() -> None:
        await opened.wait()

    ids = await backlog(make_tracker, "hold", 3)
    # The sweep looks every 50 ms: a lease not renewed would expire within the wait below.
    async with make_tracker(concurrency=1, lease_seconds=0.6) as tracker:
        await wait_until(lambda: bool(tracker.dispatcher.prefetched))
        ready = tracker.dispatcher.prefetched
        assert statuses(store, ready) == ["running"], "claimed and leased while it waits"
        await asyncio.sleep(1.5)  # two and a half lease lengths
        opened.set()
        await wait_until(lambda: set(statuses(store, ids)) == {"succeeded"})
    for run_id in ids:
        [attempt] = load_attempts(store, run_id)
        assert attempt.outcome == Outcome.succeeded, "never rescued as an expired lease"


async def test_stop_gives_back_prefetched_runs_at_once(
    store: Engine, registry: TaskRegistry, make_tracker: TrackerFactory
) -> None:
    @registry.task("hold")
    async def hold() -> None:
        await asyncio.Event().wait()

    ids = await backlog(make_tracker, "hold", 4)
    async with make_tracker(concurrency=1) as tracker:
        await wait_until(lambda: bool(tracker.dispatcher.prefetched))
        ready = tracker.dispatcher.prefetched
        await tracker.dispatcher.stop(grace_seconds=0.1)
    assert RunStatus.running not in statuses(store, ids), "nothing left to the lease sweep"
    for run_id in ready:
        run = load_run(store, run_id)
        assert run.status == RunStatus.retrying and run.worker is None
        [attempt] = load_attempts(store, run_id)
        assert attempt.outcome == Outcome.interrupted and attempt.error_type == "Shutdown"
