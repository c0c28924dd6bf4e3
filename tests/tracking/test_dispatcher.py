"""The dispatcher on SQLite and PostgreSQL: attempts, retries on a fake clock, leases, shutdown, limits."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, update

from notifyd.db import write_connection
from notifyd.models import Outcome, RunStatus
from notifyd.tracking import (
    DispatcherConfig,
    PermanentError,
    TaskContext,
    TaskRegistry,
    TransientError,
)
from notifyd.tracking.admin import RUNS
from notifyd.tracking.retry import RetryPolicies, RetryPolicy
from notifyd.tracking.tasks import TaskBatch
from tests.tracking.conftest import (
    FakeClock,
    TrackerFactory,
    enqueue,
    load_attempts,
    load_run,
    mark_orphaned,
    wait_status,
    wait_until,
)

pytestmark = pytest.mark.anyio


async def test_success_records_one_attempt(
    store: Engine, registry: TaskRegistry, make_tracker: TrackerFactory
) -> None:
    seen: list[tuple[str, int]] = []

    @registry.task("greet")
    async def greet(name: str, ctx: TaskContext) -> dict[str, Any]:
        seen.append((name, ctx.attempt))
        return {"greeted": name}

    async with make_tracker() as tracker:
        run_id = await enqueue(tracker, greet, "ada")
        run = await wait_status(store, run_id, "succeeded")
    assert seen == [("ada", 1)]
    assert run.attempts == 1 and run.finished_at is not None and run.last_error is None
    [attempt] = load_attempts(store, run_id)
    assert attempt.outcome == Outcome.succeeded
    assert attempt.response == {"greeted": "ada"}
    assert attempt.finished_at is not None and attempt.duration_ms is not None


async def test_sync_task_runs_off_the_event_loop(
    store: Engine, registry: TaskRegistry, make_tracker: TrackerFactory
) -> None:
    threads: list[str] = []

    @registry.task("sync")
    def sync_task() -> None:
        threads.append(threading.current_thread().name)

    async with make_tracker() as tracker:
        run_id = await enqueue(tracker, sync_task)
        await wait_status(store, run_id, "succeeded")
    assert threads and threads[0].startswith("notifyd-task")


async def test_transient_errors_follow_the_schedule_on_a_fake_clock(
    store: Engine, registry: TaskRegistry, make_tracker: TrackerFactory, clock: FakeClock
) -> None:
    calls: list[int] = []

    @registry.task("flaky")
    async def flaky(ctx: TaskContext) -> None:
        calls.append(ctx.attempt)
        if ctx.attempt < 3:
            raise TransientError(f"try {ctx.attempt} failed")

    async with make_tracker() as tracker:
        start = clock()
        run_id = await enqueue(tracker, flaky)
        run = await wait_status(store, run_id, "retrying")
        assert run.next_attempt_at == start + timedelta(seconds=10)
        await tracker.dispatcher.passed(2)  # it looked again, after the run was retrying
        assert calls == [1], "not due yet: the clock has not moved"
        clock.advance(10)
        await wait_until(
            lambda: (r := load_run(store, run_id)).attempts == 2 and r.status == "retrying"
        )
        run = load_run(store, run_id)
        assert run.next_attempt_at == start + timedelta(seconds=70)
        clock.advance(60)
        run = await wait_status(store, run_id, "succeeded")
    assert calls == [1, 2, 3]
    attempts = load_attempts(store, run_id)
    assert [a.outcome for a in attempts] == [
        Outcome.transient_error,
        Outcome.transient_error,
        Outcome.succeeded,
    ]
    assert [a.retry_delay_seconds for a in attempts] == [10, 60, None]
    assert attempts[0].error_type == "TransientError"
    assert attempts[0].error_message == "try 1 failed"
    assert attempts[0].traceback and "try 1 failed" in attempts[0].traceback


async def test_unexpected_exceptions_are_transient_and_attempts_run_out(
    store: Engine, registry: TaskRegistry, make_tracker: TrackerFactory, clock: FakeClock
) -> None:
    @registry.task("broken")
    async def broken() -> None:
        raise ValueError("boom")

    async with make_tracker() as tracker:
        run_id = await enqueue(tracker, broken)
        for attempt, delay in ((1, 10), (2, 60)):
            await wait_until(
                lambda a=attempt: (  # type: ignore[misc]
                    (r := load_run(store, run_id)).attempts == a and r.status == "retrying"
                )
            )
            clock.advance(delay)
        run = await wait_status(store, run_id, "failed")
    assert run.attempts == 3
    assert run.last_error == "ValueError: boom"
    assert [a.outcome for a in load_attempts(store, run_id)] == [Outcome.transient_error] * 3


async def test_permanent_error_fails_at_once(
    store: Engine, registry: TaskRegistry, make_tracker: TrackerFactory
) -> None:
    @registry.task("refused")
    async def refused() -> None:
        raise PermanentError("550 no such user", response={"code": 550})

    async with make_tracker() as tracker:
        run_id = await enqueue(tracker, refused)
        run = await wait_status(store, run_id, "failed")
    assert run.attempts == 1
    [attempt] = load_attempts(store, run_id)
    assert attempt.outcome == Outcome.permanent_error
    assert attempt.response == {"code": 550}
    assert attempt.retry_delay_seconds is None


async def test_retry_after_is_honoured_within_bounds(
    store: Engine, registry: TaskRegistry, make_tracker: TrackerFactory, clock: FakeClock
) -> None:
    @registry.task("throttled")
    async def throttled() -> None:
        raise TransientError("429", retry_after=15)

    async with make_tracker() as tracker:
        start = clock()
        run_id = await enqueue(tracker, throttled)
        run = await wait_status(store, run_id, "retrying")
    assert run.next_attempt_at == start + timedelta(seconds=15)
    assert load_attempts(store, run_id)[0].retry_delay_seconds == 15


async def test_a_run_whose_task_is_not_registered_fails_permanently(
    store: Engine, registry: TaskRegistry, make_tracker: TrackerFactory
) -> None:
    @registry.task("gone")
    async def gone() -> None:
        return None

    async with make_tracker() as tracker:
        run_id = await enqueue(tracker, gone)
        await wait_status(store, run_id, "succeeded")
        with write_connection(store) as conn:
            conn.execute(
                update(RUNS)
                .where(RUNS.c.id == run_id)
                .values(
                    task_name="not.registered", status="queued", next_attempt_at=tracker.clock()
                )
            )
        tracker.committed()
        run = await wait_status(store, run_id, "failed")
    assert "not.registered" in (run.last_error or "")


async def test_expired_lease_is_rescued_and_the_run_runs_again(
    store: Engine, registry: TaskRegistry, make_tracker: TrackerFactory, clock: FakeClock
) -> None:
    done = asyncio.Event()

    @registry.task("once")
    async def once() -> None:
        done.set()

    async with make_tracker(run_dispatcher=False) as tracker:
        # A run that a dead worker had claimed: running, attempt 1 open, lease long expired.
        run_id = await enqueue(tracker, once)
    mark_orphaned(store, run_id, at=clock())
    async with make_tracker() as tracker:
        run = await wait_status(store, run_id, "succeeded")
    assert done.is_set()
    attempts = load_attempts(store, run_id)
    assert [a.outcome for a in attempts] == [Outcome.interrupted, Outcome.succeeded]
    assert attempts[0].error_type == "LeaseExpired"
    assert run.interruptions == 1 and run.attempts == 2


async def test_lease_is_renewed_while_a_run_is_running(
    store: Engine, registry: TaskRegistry, make_tracker: TrackerFactory, clock: FakeClock
) -> None:
    release = asyncio.Event()

    @registry.task("slow")
    async def slow() -> None:
        await release.wait()

    async with make_tracker(lease_seconds=0.3) as tracker:
        run_id = await enqueue(tracker, slow)
        run = await wait_status(store, run_id, "running")
        first_lease = run.lease_expires_at
        assert first_lease is not None
        lease = timedelta(seconds=0.3)
        for _ in range(5):  # 1 s of fake time in steps shorter than the lease
            clock.advance(0.2)
            # Renewed since this step (a full lease from now): only then step again, or two
            # steps could pass between a renewal and the sweep that follows it.
            await wait_until(
                lambda: (load_run(store, run_id).lease_expires_at or first_lease) >= clock() + lease
            )
        # The sweep ran meanwhile (every 0.05 s) and left the renewed run alone.
        assert load_run(store, run_id).status == "running"
        release.set()
        await wait_status(store, run_id, "succeeded")
    assert [a.outcome for a in load_attempts(store, run_id)] == [Outcome.succeeded]


async def test_stop_releases_unfinished_runs_for_an_immediate_restart(
    store: Engine, registry: TaskRegistry, make_tracker: TrackerFactory
) -> None:
    started = asyncio.Event()
    calls: list[int] = []

    @registry.task("stuck")
    async def stuck(ctx: TaskContext) -> None:
        calls.append(ctx.attempt)
        if ctx.attempt == 1:
            started.set()
            await asyncio.sleep(3600)

    async with make_tracker() as tracker:
        run_id = await enqueue(tracker, stuck)
        await asyncio.wait_for(started.wait(), 10)
        await tracker.dispatcher.stop(grace_seconds=0.1)
    run = load_run(store, run_id)
    assert run.status == RunStatus.retrying
    assert run.lease_expires_at is None and run.worker is None
    [attempt] = load_attempts(store, run_id)
    assert attempt.outcome == Outcome.interrupted and attempt.error_type == "Shutdown"
    # The next start picks it up at once, without waiting for a lease to expire.
    async with make_tracker(lease_seconds=3600) as tracker:
        await wait_status(store, run_id, "succeeded")
    assert calls == [1, 2]


async def test_stop_waits_for_running_attempts_within_the_grace_period(
    store: Engine, registry: TaskRegistry, make_tracker: TrackerFactory
) -> None:
    started = asyncio.Event()

    @registry.task("short")
    async def short() -> None:
        started.set()
        await asyncio.sleep(0.3)

    async with make_tracker() as tracker:
        run_id = await enqueue(tracker, short)
        await asyncio.wait_for(started.wait(), 10)
        await tracker.dispatcher.stop(grace_seconds=10)
    assert load_run(store, run_id).status == RunStatus.succeeded


@pytest.mark.parametrize(("limits", "expected"), [({}, 3), ({"slow": 2}, 2)])
async def test_concurrency_is_bounded_globally_and_per_channel(
    store: Engine,
    registry: TaskRegistry,
    make_tracker: TrackerFactory,
    limits: dict[str, int],
    expected: int,
) -> None:
    active = 0
    peak = 0

    @registry.task("bounded")
    async def bounded() -> None:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.05)
        active -= 1

    async with make_tracker(concurrency=3, queue_concurrency=limits) as tracker:
        batch_ids = []
        from notifyd.tracking import TaskBatch

        batch = TaskBatch(tracker)
        for _ in range(12):
            batch_ids.append(batch.add_run(bounded, queue="slow"))
        await batch.commit()
        for run_id in batch_ids:
            await wait_status(store, run_id, "succeeded")
    assert peak == expected


async def test_a_run_that_keeps_killing_its_worker_is_given_up(
    store: Engine, registry: TaskRegistry, make_tracker: TrackerFactory, clock: FakeClock
) -> None:
    from notifyd.tracking.admin import MAX_CRASHES

    @registry.task("poison")
    async def poison() -> None:
        return None

    async with make_tracker(run_dispatcher=False) as tracker:
        run_id = await enqueue(tracker, poison)
    # Shutdowns interrupted it often; that alone never gives a run up.
    mark_orphaned(store, run_id, at=clock(), attempts=9, interruptions=8, crashes=0)
    async with make_tracker() as tracker:
        await wait_status(store, run_id, "succeeded")
    mark_orphaned(
        store, run_id, at=clock(), attempts=MAX_CRASHES, interruptions=9, crashes=MAX_CRASHES - 1
    )
    async with make_tracker() as tracker:
        run = await wait_status(store, run_id, "failed")
    assert "giving up" in (run.last_error or "")


async def test_a_queue_with_its_own_policy_gets_its_budget_and_delays(
    store: Engine, registry: TaskRegistry, make_tracker: TrackerFactory, clock: FakeClock
) -> None:
    policies = RetryPolicies(
        RetryPolicy(max_attempts=1),
        by_queue={"flaky": RetryPolicy(max_attempts=2, schedule=(7,))},
    )

    @registry.task("fails")
    async def fails() -> None:
        raise RuntimeError("peer down")

    async with make_tracker(retry=policies) as tracker:
        batch = TaskBatch(tracker)
        flaky = batch.add_run(fails, queue="flaky")
        plain = batch.add_run(fails)
        await batch.commit()
        retrying = await wait_status(store, flaky, "retrying")
        failed = await wait_status(store, plain, "failed")
    assert (retrying.max_attempts, failed.max_attempts) == (2, 1)
    assert retrying.next_attempt_at == clock() + timedelta(seconds=7)


async def test_two_dispatchers_sharing_one_queue_run_each_run_once(
    store: Engine, registry: TaskRegistry, make_tracker: TrackerFactory
) -> None:
    executed: list[str] = []

    @registry.task("count")
    async def count(ctx: TaskContext) -> None:
        executed.append(ctx.run_id)
        await asyncio.sleep(0.005)

    async with make_tracker(concurrency=8) as first, make_tracker(concurrency=8) as second:
        from notifyd.tracking import TaskBatch

        batch = TaskBatch(first)
        ids = [batch.add_run(count) for _ in range(200)]
        await batch.commit()
        second.committed()
        await wait_until(
            lambda: all(load_run(store, i).status == "succeeded" for i in ids[-5:]), limit=30
        )
        await wait_until(lambda: len(executed) >= 200, limit=30)
    assert sorted(executed) == sorted(ids), "every run exactly once"
    workers = {a.worker for i in ids for a in load_attempts(store, i)}
    assert len(workers) == 2, "both dispatchers took a share"


async def test_outcomes_survive_a_failed_write_and_are_recorded_later(
    store: Engine, registry: TaskRegistry, make_tracker: TrackerFactory
) -> None:
    from sqlalchemy.exc import OperationalError

    calls: list[str] = []

    @registry.task("once_more")
    async def once_more(ctx: TaskContext) -> None:
        calls.append(ctx.run_id)

    async with make_tracker() as tracker:
        real_run = tracker.writer.run
        failures = 0

        async def flaky_run(fn: Any = None, **kwargs: Any) -> Any:
            nonlocal failures
            name = getattr(getattr(fn, "func", None), "__name__", "")
            if name == "finish_attempts" and failures < 2:
                failures += 1
                raise OperationalError("UPDATE", {}, ConnectionError("database restarting"))
            return await real_run(fn, **kwargs)

        tracker.writer.run = flaky_run
        run_id = await enqueue(tracker, once_more)
        await wait_status(store, run_id, "succeeded")
    assert failures == 2 and calls == [run_id]
    assert [a.outcome for a in load_attempts(store, run_id)] == [Outcome.succeeded]


async def test_a_stopped_dispatcher_can_start_again_and_run_sync_tasks(
    store: Engine, registry: TaskRegistry, make_tracker: TrackerFactory
) -> None:
    @registry.task("sync_again")
    def sync_again() -> None:
        return None

    async with make_tracker() as tracker:
        first = await enqueue(tracker, sync_again)
        await wait_status(store, first, "succeeded")
        await tracker.stop(grace_seconds=1)
        await tracker.start()
        second = await enqueue(tracker, sync_again)
        await wait_status(store, second, "succeeded")


@pytest.mark.postgres
async def test_on_postgresql_another_process_is_woken_at_once(
    postgres_url: str, registry: TaskRegistry
) -> None:
    from notifyd.db import make_engine, upgrade
    from notifyd.tracking import TaskBatch, Tracker

    engine = make_engine(postgres_url)
    upgrade(engine)
    ran = asyncio.Event()

    @registry.task("woken")
    async def woken() -> None:
        ran.set()

    # The worker polls only every 60 s: only the notification can wake it in time.
    worker = Tracker(engine, registry, config=DispatcherConfig(poll_seconds=60, sweep_seconds=60))
    submitter = Tracker(engine, registry, run_dispatcher=False)
    await worker.start()
    await submitter.start()
    try:
        assert worker.listener is not None
        await asyncio.wait_for(worker.listener.listening.wait(), 10)
        await worker.dispatcher.passed()  # its first look found nothing; now it waits 60 s
        batch = TaskBatch(submitter)
        batch.add_task(woken)
        await batch.commit()
        await asyncio.wait_for(ran.wait(), 20)
    finally:
        await submitter.stop()
        await worker.stop(grace_seconds=1)
        engine.dispose()


async def test_outcomes_any_store_refuses_are_cleaned_and_the_dispatcher_goes_on(
    store: Engine, registry: TaskRegistry, make_tracker: TrackerFactory
) -> None:
    @registry.task("garbled")
    async def garbled() -> None:
        # An SMTP reply with undecodable bytes (surrogateescape) and a NUL, plus a non-JSON value.
        raise PermanentError("550 no such user \udcff\x00", response={"when": datetime.now(UTC)})

    @registry.task("fine")
    async def fine() -> None:
        return None

    async with make_tracker(concurrency=1) as tracker:
        bad = await enqueue(tracker, garbled)
        good = await enqueue(tracker, fine)
        await wait_status(store, bad, "failed")
        await wait_status(store, good, "succeeded")
    [attempt] = load_attempts(store, bad)
    assert attempt.error_message is not None and "550 no such user" in attempt.error_message
    assert attempt.response is not None and isinstance(attempt.response["when"], str)


async def test_an_exception_that_cannot_be_described_still_frees_its_slot(
    store: Engine, registry: TaskRegistry, make_tracker: TrackerFactory
) -> None:
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    @registry.task("weird")
    async def weird() -> None:
        raise Unprintable()

    @registry.task("after")
    async def after() -> None:
        return None

    async with make_tracker(concurrency=1) as tracker:
        first = await enqueue(tracker, weird)
        await wait_status(store, first, "retrying")
        second = await enqueue(tracker, after)
        await wait_status(store, second, "succeeded")
        assert tracker.dispatcher.in_flight == 0
    assert "could not be described" in (load_attempts(store, first)[0].error_message or "")


async def test_no_more_claims_while_outcomes_cannot_be_recorded(
    store: Engine,
    registry: TaskRegistry,
    make_tracker: TrackerFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Runs it could not record are not renewed: claiming more on top would pile them up."""
    from sqlalchemy import func, select
    from sqlalchemy.exc import OperationalError

    from notifyd.tracking import admin

    @registry.task("quick")
    async def quick() -> None:
        return None

    refusals: list[int] = []

    def refuse(*args: Any, **kwargs: Any) -> int:
        refusals.append(1)
        raise OperationalError("UPDATE attempt ...", {}, Exception("the store refuses writes"))

    def claimed() -> int:
        with store.connect() as conn:
            query = select(func.count()).where(RUNS.c.status != RunStatus.queued.value)
            return int(conn.execute(query).scalar_one())

    monkeypatch.setattr(admin, "finish_attempts", refuse)
    async with make_tracker(concurrency=2, sweep_seconds=3600) as tracker:
        for _ in range(10):
            await enqueue(tracker, quick)
        await wait_until(lambda: len(refusals) >= 12)  # several passes have tried and failed
        # The first claim, and at most one more made while the first outcomes were recorded.
        assert claimed() <= 4
