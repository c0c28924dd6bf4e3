"""Hand-off on SQLite and PostgreSQL: runs committed already claimed by an idle dispatcher."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, Engine

from notifyd.models import Outcome, RunStatus
from notifyd.tracking import TaskRegistry, admin
from notifyd.tracking import dispatcher as dispatcher_module
from notifyd.tracking.tasks import TaskBatch
from notifyd.tracking.tracker import Tracker
from tests.tracking.conftest import (
    FakeClock,
    TrackerFactory,
    load_attempts,
    load_run,
    wait_status,
)

pytestmark = pytest.mark.anyio
# Polls would make the dispatcher claim (and refuse hand-offs meanwhile) at random moments.
QUIET = {"poll_seconds": 30.0}


@pytest.fixture
def gate(registry: TaskRegistry) -> asyncio.Event:
    """Opened by the test: until then every run of ``hold`` waits."""
    opened = asyncio.Event()

    @registry.task("hold")
    async def hold() -> None:
        await opened.wait()

    return opened


@pytest.fixture
def slow_attempts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every attempt counts as slow: a run with no free slot is stored queued, not kept ready
    (see ``Dispatcher.reserve``)."""
    monkeypatch.setattr(dispatcher_module, "PREFETCH_BELOW_SECONDS", 0.0)


async def hold(tracker: Tracker) -> str:
    """Commit one run of ``hold``; its id."""
    batch = TaskBatch(tracker)
    run_id = batch.add_run("hold")
    await batch.commit()
    return run_id


async def drained(tracker: Tracker) -> None:
    """Wait for a pass of the loop whose claim found nothing more due, with no wake-up since
    (on PostgreSQL the listener wakes the dispatcher once it listens)."""
    if tracker.listener is not None:
        await tracker.listener.listening.wait()
    await tracker.dispatcher.passed()
    while not tracker.dispatcher.drained:
        await tracker.dispatcher.passed()


async def test_a_run_committed_to_an_idle_dispatcher_is_stored_claimed_and_runs_once(
    store: Engine, make_tracker: TrackerFactory, gate: asyncio.Event
) -> None:
    async with make_tracker(**QUIET) as tracker:
        await drained(tracker)
        run_id = await hold(tracker)
        # Straight after the commit, before the attempt ends: as a claim would have left it.
        run = load_run(store, run_id)
        assert run.status == RunStatus.running and run.attempts == 1
        assert run.worker == tracker.dispatcher.worker_id
        assert run.lease_expires_at == run.created_at + timedelta(seconds=30)
        assert load_attempts(store, run_id) == []  # an attempt's row is written when it ends
        with store.connect() as conn:
            [attempt] = admin.get_run(conn, run_id).attempts
        assert attempt.outcome == Outcome.running and attempt.number == 1
        assert attempt.started_at == run.created_at and attempt.worker == run.worker
        assert tracker.dispatcher.in_flight == 1
        gate.set()
        run = await wait_status(store, run_id, "succeeded")
    assert run.attempts == 1 and run.worker is None and run.lease_expires_at is None
    [ended] = load_attempts(store, run_id)
    assert ended.outcome == Outcome.succeeded


async def one_more_than_the_slot(tracker: Tracker) -> tuple[str, str]:
    """With one slot, drained: commit a run that takes it, then one that finds it taken."""
    await drained(tracker)
    return await hold(tracker), await hold(tracker)


async def test_a_run_with_no_free_slot_waits_ready_while_attempts_are_short(
    store: Engine, make_tracker: TrackerFactory, gate: asyncio.Event
) -> None:
    async with make_tracker(concurrency=1, **QUIET) as tracker:
        first, second = await one_more_than_the_slot(tracker)
        # Stored claimed, as a prefetched run is, and started when the first one's slot frees.
        assert load_run(store, second).status == RunStatus.running
        assert tracker.dispatcher.prefetched == [second]
        assert tracker.dispatcher.in_flight == 1
        # The slot and the one run that may wait for it are taken: the next one is queued.
        third = await hold(tracker)
        assert load_run(store, third).status == RunStatus.queued
        gate.set()
        for run_id in (first, second, third):
            run = await wait_status(store, run_id, "succeeded")
            assert run.attempts == 1
        [attempt] = load_attempts(store, second)
        assert attempt.outcome == Outcome.succeeded


async def test_no_run_waits_ready_behind_slots_that_stopped_freeing(
    store: Engine,
    make_tracker: TrackerFactory,
    gate: asyncio.Event,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(dispatcher_module, "PREFETCH_BELOW_SECONDS", 0.01)
    async with make_tracker(concurrency=2, **QUIET) as tracker:
        await drained(tracker)
        await hold(tracker)
        await hold(tracker)
        waiting = await hold(tracker)
        assert tracker.dispatcher.prefetched == [waiting]
        # Longer than a short attempt, and no slot freed: the attempts hang, so the next run
        # is left in the store for any worker, though one more could wait ready here.
        await asyncio.sleep(0.05)
        later = await hold(tracker)
        assert load_run(store, later).status == RunStatus.queued
        assert tracker.dispatcher.prefetched == [waiting]
        gate.set()
        await wait_status(store, later, "succeeded")


@pytest.mark.usefixtures("slow_attempts")
async def test_no_free_slot_leaves_the_run_queued_while_attempts_are_slow(
    store: Engine, make_tracker: TrackerFactory, gate: asyncio.Event
) -> None:
    async with make_tracker(concurrency=1, **QUIET) as tracker:
        first, second = await one_more_than_the_slot(tracker)
        assert load_run(store, first).status == RunStatus.running
        assert load_run(store, second).status == RunStatus.queued
        gate.set()
        await wait_status(store, second, "succeeded")


async def test_a_dispatcher_with_due_runs_to_claim_takes_no_hand_off(
    make_tracker: TrackerFactory,
) -> None:
    async with make_tracker(**QUIET) as tracker:
        dispatcher = tracker.dispatcher
        await drained(tracker)
        assert dispatcher.reserve(None)
        dispatcher.unreserve(None)
        # Woken (new queued runs elsewhere, an operator's retry): older runs may be due, and
        # they go first, so nothing is handed over until a claim has found them all.
        dispatcher.wake()
        assert not dispatcher.reserve(None)
        await drained(tracker)
        assert dispatcher.reserve(None)
        dispatcher.unreserve(None)


async def test_a_scheduled_run_waits_in_the_store(
    store: Engine, make_tracker: TrackerFactory, clock: FakeClock, gate: asyncio.Event
) -> None:
    async with make_tracker(**QUIET) as tracker:
        await drained(tracker)
        batch = TaskBatch(tracker)
        run_id = batch.add_run("hold", run_at=clock() + timedelta(hours=1))
        await batch.commit()
        assert load_run(store, run_id).status == RunStatus.queued
        assert tracker.dispatcher.in_flight == 0
        gate.set()


async def test_a_failed_commit_gives_its_slots_back(
    store: Engine, make_tracker: TrackerFactory, gate: asyncio.Event
) -> None:
    def broken(conn: object) -> None:
        raise RuntimeError("the store said no")

    async with make_tracker(concurrency=1, **QUIET) as tracker:
        await drained(tracker)
        batch = TaskBatch(tracker)
        lost = batch.add_run("hold")
        batch.add_write(broken)
        with pytest.raises(RuntimeError, match="the store said no"):
            await batch.commit()
        assert tracker.dispatcher.in_flight == 0
        # The one slot is free again: the next run is handed over.
        run_id = await hold(tracker)
        assert load_run(store, run_id).status == RunStatus.running
        gate.set()
        await wait_status(store, run_id, "succeeded")
    with pytest.raises(Exception, match="No row was found"):
        load_run(store, lost)


async def test_a_full_queue_takes_no_hand_off_and_others_still_do(
    store: Engine, make_tracker: TrackerFactory, gate: asyncio.Event
) -> None:
    async def add(tracker: Tracker, queue: str) -> str:
        batch = TaskBatch(tracker)
        run_id = batch.add_run("hold", queue=queue)
        await batch.commit()
        return run_id

    async with make_tracker(queue_concurrency={"slow": 1}, **QUIET) as tracker:
        await drained(tracker)
        first = await add(tracker, "slow")
        capped = await add(tracker, "slow")
        # Its commit woke the dispatcher: hand-offs wait for the claim that finds it (full).
        await drained(tracker)
        other = await add(tracker, "fast")
        statuses = [load_run(store, run_id).status for run_id in (first, capped, other)]
        assert statuses == [RunStatus.running, RunStatus.queued, RunStatus.running]
        gate.set()
        await wait_status(store, capped, "succeeded")


async def test_stopping_releases_a_handed_off_run_for_the_next_start(
    store: Engine, make_tracker: TrackerFactory, gate: asyncio.Event
) -> None:
    async with make_tracker(**QUIET) as tracker:
        await drained(tracker)
        run_id = await hold(tracker)
        await tracker.dispatcher.stop(grace_seconds=0)
    run = load_run(store, run_id)
    assert run.status == RunStatus.retrying and run.worker is None
    [attempt] = load_attempts(store, run_id)
    assert attempt.outcome == Outcome.interrupted and attempt.error_type == "Shutdown"
    gate.set()
    async with make_tracker() as tracker:
        await wait_status(store, run_id, "succeeded")


async def claim_woken(
    tracker: Tracker, monkeypatch: pytest.MonkeyPatch, transaction: Callable[[], int | None]
) -> int:
    """Make the dispatcher claim, woken during that claim (as by a commit in another
    transaction: ``transaction()``, read inside the claim's); wait for that pass. The number
    of passes before it."""
    dispatcher = tracker.dispatcher
    await drained(tracker)
    loop = asyncio.get_running_loop()
    claim_runs = admin.claim_runs
    woken: list[int | None] = []

    def claim_and_wake(conn: Connection, **kwargs: Any) -> Any:
        if not woken:
            woken.append(transaction())
            loop.call_soon_threadsafe(dispatcher.wake, woken[0])  # before the claim ends
        return claim_runs(conn, **kwargs)

    monkeypatch.setattr(admin, "claim_runs", claim_and_wake)
    passes = dispatcher.passes
    dispatcher.wake()
    await dispatcher.passed()
    assert woken
    return passes


async def test_a_wake_up_during_a_claim_keeps_the_dispatcher_from_taking_hand_offs(
    make_tracker: TrackerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Runs committed (elsewhere) while a claim runs may be newer than its snapshot: until a
    # claim that began after the wake-up, they could be overtaken by hand-offs.
    async with make_tracker(**QUIET) as tracker:
        passes = await claim_woken(tracker, monkeypatch, lambda: None)
        while not tracker.dispatcher.drained:
            await tracker.dispatcher.passed()
        assert tracker.dispatcher.passes >= passes + 2


async def test_a_wake_up_for_runs_the_claim_itself_saw_leaves_the_dispatcher_drained(
    make_tracker: TrackerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Under a steady load a claim's own transaction commits new queued runs: the claim saw
    # them, so one claim drains the dispatcher again (it used to need a claim with no commit
    # beside it, and never got one, each run paying for a claim).
    async with make_tracker(**QUIET) as tracker:
        writer = tracker.writer
        passes = await claim_woken(tracker, monkeypatch, lambda: writer.transactions)
        assert tracker.dispatcher.drained and tracker.dispatcher.passes == passes + 1


async def test_a_wake_up_for_runs_committed_after_the_claim_keeps_it_from_hand_offs(
    make_tracker: TrackerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with make_tracker(**QUIET) as tracker:
        dispatcher, writer = tracker.dispatcher, tracker.writer
        passes = await claim_woken(tracker, monkeypatch, lambda: writer.transactions + 1)
        assert not dispatcher.drained and not dispatcher.reserve(None)
        while not dispatcher.drained:
            await dispatcher.passed()
        assert dispatcher.passes >= passes + 2


@pytest.mark.usefixtures("slow_attempts")
async def test_a_queued_commit_wakes_the_dispatcher_with_its_transaction(
    store: Engine, make_tracker: TrackerFactory, gate: asyncio.Event,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    async with make_tracker(concurrency=1, **QUIET) as tracker:
        await drained(tracker)
        await hold(tracker)  # takes the one slot: the next run is stored queued
        wakes: list[int | None] = []
        wake = tracker.dispatcher.wake

        def recorded(transaction: int | None = None) -> None:
            wakes.append(transaction)
            wake(transaction)

        monkeypatch.setattr(tracker.dispatcher, "wake", recorded)
        before = tracker.writer.transactions
        queued = await hold(tracker)
        assert load_run(store, queued).status == RunStatus.queued
        # (on PostgreSQL the listener may wake it too, for the same NOTIFY: unnumbered)
        assert [t for t in wakes if t is not None] == [before + 1]
        gate.set()
        await wait_status(store, queued, "succeeded")


async def claim_with_a_commit_beside_it(
    tracker: Tracker, monkeypatch: pytest.MonkeyPatch, *, after_a_full_claim: bool = False
) -> tuple[str, list[str]]:
    """Wake the dispatcher and, once its claim is under way, commit a run of ``hold`` (as
    under a steady load, where a claim's pass commits new notifications too); wait for that
    pass. The new run's id and the ids of the runs handed to the dispatcher meanwhile."""
    dispatcher, writer = tracker.dispatcher, tracker.writer
    await drained(tracker)
    if after_a_full_claim:  # as after a claim that took all it could
        monkeypatch.setattr(dispatcher, "_last_claim_full", True)
    adopted: list[str] = []
    adopt = dispatcher.adopt

    def recorded(claimed: list[Any]) -> None:
        adopted.extend(run.id for run in claimed)
        adopt(claimed)

    monkeypatch.setattr(dispatcher, "adopt", recorded)
    beside: list[asyncio.Future[str]] = []
    run = writer.run

    async def run_and_commit_beside(*args: Any, **kwargs: Any) -> Any:
        if dispatcher._claiming and not beside:  # the claim's write, on the loop
            beside.append(asyncio.ensure_future(hold(tracker)))
        return await run(*args, **kwargs)

    monkeypatch.setattr(writer, "run", run_and_commit_beside)
    dispatcher.wake()
    await dispatcher.passed()
    assert beside
    return await beside[0], adopted


async def test_a_claim_after_a_drain_leaves_slots_for_runs_committed_meanwhile(
    store: Engine, make_tracker: TrackerFactory, gate: asyncio.Event,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    # Stored queued, such a run needed the next claim, whose pass committed more: under a
    # steady load the dispatcher kept claiming in bursts, each run paying for a claim.
    async with make_tracker(**QUIET) as tracker:
        run_id, adopted = await claim_with_a_commit_beside_it(tracker, monkeypatch)
        assert adopted == [run_id]
        assert load_run(store, run_id).status == RunStatus.running
        assert tracker.dispatcher.drained  # nothing was stored queued: no claim is needed
        gate.set()
        await wait_status(store, run_id, "succeeded")


async def test_a_claim_after_a_full_one_leaves_no_slots_to_newer_runs(
    store: Engine, make_tracker: TrackerFactory, gate: asyncio.Event,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    async with make_tracker(**QUIET) as tracker:
        # After a claim that took all it could, older due runs may still wait, and they go
        # first: the run committed during the next claim waits in the store.
        run_id, adopted = await claim_with_a_commit_beside_it(
            tracker, monkeypatch, after_a_full_claim=True
        )
        assert adopted == []
        assert load_run(store, run_id).status in (RunStatus.queued, RunStatus.running)
        gate.set()
        await wait_status(store, run_id, "succeeded")


async def test_a_run_that_comes_due_is_claimed_under_a_steady_trickle_of_hand_offs(
    store: Engine, make_tracker: TrackerFactory, clock: FakeClock, registry: TaskRegistry
) -> None:
    # Nothing wakes the dispatcher when a scheduled run or a retry comes due: the poll does.
    # It counted from the last wake-up, and every finished run wakes the dispatcher, so a
    # trickle of hand-offs (one per poll interval or more often) kept it from ever claiming.
    @registry.task("noop")
    async def noop() -> None:
        return None

    async with make_tracker(poll_seconds=0.05, sweep_seconds=30.0) as tracker:
        await drained(tracker)
        batch = TaskBatch(tracker)
        scheduled = batch.add_run("noop", run_at=clock() + timedelta(seconds=10))
        await batch.commit()
        await drained(tracker)  # the claim its commit woke found nothing due
        clock.advance(20)  # due now, and nothing says so
        for _ in range(300):  # a run every ~10 ms, for up to 3 s
            trickle = TaskBatch(tracker)
            trickle.add_run("noop")
            await trickle.commit()
            if load_run(store, scheduled).status == RunStatus.succeeded:
                break
            await asyncio.sleep(0.01)  # the trickle's pace, not a wait for the outcome
        assert load_run(store, scheduled).status == RunStatus.succeeded


@pytest.mark.usefixtures("slow_attempts")
async def test_claimed_runs_start_in_the_pass_that_learns_of_the_claims_commit(
    store: Engine, make_tracker: TrackerFactory, gate: asyncio.Event,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    # A pass later, when the claim's caller resumes, the runs ran a pass after that: under a
    # steady load a cycle of claims took four passes of the loop where two will do.
    async with make_tracker(concurrency=1, **QUIET) as tracker:
        dispatcher = tracker.dispatcher
        # The first takes the one slot: the second is stored queued, then claimed.
        _, queued = await one_more_than_the_slot(tracker)
        starts: list[tuple[str, bool]] = []
        start_run = dispatcher._start_run

        def recorded(run: Any) -> None:
            starts.append((run.id, dispatcher._claiming))  # the claim has not returned yet
            start_run(run)

        monkeypatch.setattr(dispatcher, "_start_run", recorded)
        gate.set()
        await wait_status(store, queued, "succeeded")
        assert starts == [(queued, True)]


async def test_a_caller_cancelled_after_its_commit_leaves_its_runs_running(
    store: Engine, make_tracker: TrackerFactory, gate: asyncio.Event
) -> None:
    # Adopted only once the caller resumed, such runs stayed stored running, unexecuted,
    # until the lease sweep (30 s) rescued them.
    async with make_tracker(**QUIET) as tracker:
        await drained(tracker)
        batch = TaskBatch(tracker)
        run_id = batch.add_run("hold")
        committing = asyncio.ensure_future(batch.commit())

        def cancel_the_caller() -> None:  # committed, and not resumed yet
            committing.cancel()

        batch.on_commit(cancel_the_caller)
        with pytest.raises(asyncio.CancelledError):
            await committing
        assert tracker.dispatcher.in_flight == 1
        gate.set()
        run = await wait_status(store, run_id, "succeeded")
        assert run.attempts == 1


async def test_a_failing_on_commit_function_keeps_no_slot_from_its_runs(
    store: Engine, make_tracker: TrackerFactory, gate: asyncio.Event
) -> None:
    def broken() -> None:
        raise RuntimeError("an observer of the commit failed")

    async with make_tracker(concurrency=1, **QUIET) as tracker:
        await drained(tracker)
        batch = TaskBatch(tracker)
        first = batch.add_run("hold")
        batch.on_commit(broken)
        await batch.commit()  # committed: its caller hears so
        assert tracker.dispatcher.in_flight == 1
        gate.set()
        await wait_status(store, first, "succeeded")
        second = await hold(tracker)  # the one slot is free again
        await wait_status(store, second, "succeeded")
