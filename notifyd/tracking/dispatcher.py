"""The dispatcher: claims due runs, runs them with bounded concurrency, records every attempt.

One asyncio task loops: record finished attempts, renew leases, sweep expired leases, claim as
many due runs as there are free slots, sleep until woken (a submit, a finished run) or the poll
interval passes. All its writes go through the group-commit Writer, in batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import Connection

from notifyd.tracking import admin, outcomes
from notifyd.tracking.admin import ClaimedRun
from notifyd.tracking.clock import StoreClock, new_id
from notifyd.tracking.errors import PermanentError
from notifyd.tracking.registry import TaskContext, TaskRegistry
from notifyd.tracking.retry import RetryPolicies
from notifyd.tracking.writer import Writer

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
AttemptObserver = Callable[[ClaimedRun, outcomes.AttemptResult], None]


def default_worker_id() -> str:
    """host:pid:random, unique per dispatcher."""
    return f"{socket.gethostname()}:{os.getpid()}:{new_id('w')[-6:]}"


@dataclass
class DispatcherConfig:
    """How much the dispatcher runs at once and how it keeps and rescues its leases.

    These are the library's defaults; notifyd passes its own settings for every field.
    """

    concurrency: int = 32
    queue_concurrency: Mapping[str, int] = field(default_factory=dict)
    lease_seconds: float = 30.0
    sweep_seconds: float = 5.0
    poll_seconds: float = 1.0
    grace_seconds: float = 30.0


class Dispatcher:
    """Executes due runs of registered tasks, at least once each."""

    def __init__(
        self,
        *,
        writer: Writer,
        registry: TaskRegistry,
        config: DispatcherConfig,
        retry: RetryPolicies,
        extras: Mapping[str, Any] | None = None,
        worker_id: str | None = None,
        clock: Clock | None = None,
        on_attempt: AttemptObserver | None = None,
    ) -> None:
        self.writer = writer
        self.registry = registry
        self.config = config
        self.retry = retry
        self.extras = dict(extras or {})
        self.worker_id = worker_id or default_worker_id()
        # Without a clock of its own (a test's), "now" for claims, leases and sweeps is the
        # store's: on PostgreSQL the database's clock, so that machines whose clocks differ
        # neither re-run each other's live runs nor miss due ones.
        self.clock: Clock = clock or StoreClock()
        self.on_attempt = on_attempt
        self._running: dict[str, asyncio.Task[None]] = {}
        self._running_queues: Counter[str] = Counter()
        self._results: list[outcomes.AttemptResult] = []
        # The outcomes could not be recorded last time: record them before claiming more.
        self._outcomes_failing = False
        self._wake = asyncio.Event()
        self._stopping = False
        self._loop_task: asyncio.Task[None] | None = None
        # Sync tasks run here, never in anyio's pool that sync routes share.
        self._threads: ThreadPoolExecutor | None = None
        self._last_renew = 0.0
        self._last_sweep = 0.0
        self.passes = 0  # whole passes of the loop so far (see ``passed``)
        self._pass_done = asyncio.Event()

    # ---- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Start the loop; it sweeps expired leases at once."""
        if self._loop_task is None:
            self._stopping = False
            self._threads = ThreadPoolExecutor(
                max_workers=self.config.concurrency, thread_name_prefix="notifyd-task"
            )
            self._loop_task = asyncio.create_task(self._main(), name="notifyd-dispatcher")

    def wake(self) -> None:
        """Look for due runs now (called after new runs are committed)."""
        self._wake.set()

    @property
    def in_flight(self) -> int:
        """How many runs this dispatcher is executing."""
        return len(self._running)

    async def stop(self, grace_seconds: float | None = None) -> None:
        """Stop claiming; let running attempts finish within the grace period; release the rest.

        Runs still executing when the grace period ends are recorded as interrupted and made due
        again at once, so the next start (or another worker) picks them up without waiting for
        their lease to expire.
        """
        grace = self.config.grace_seconds if grace_seconds is None else grace_seconds
        self._stopping = True
        self._wake.set()
        if self._loop_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None
        pending = list(self._running.values())
        if pending:
            log.info("waiting up to %.0fs for %d running task(s)", grace, len(pending))
            _done, still = (
                await asyncio.wait(pending, timeout=grace) if grace > 0 else ((), pending)
            )
            unfinished = [run_id for run_id, task in self._running.items() if task in still]
            for task in still:
                task.cancel()
            if still:
                await asyncio.gather(*still, return_exceptions=True)
        else:
            unfinished = []
        try:
            await self._flush()
            if unfinished:
                await self.writer.run(
                    lambda conn: admin.interrupt_runs(
                        conn,
                        now=self._now(conn),
                        reason=f"worker {self.worker_id} shut down before the attempt finished",
                        error_type="Shutdown",
                        run_ids=unfinished,
                        worker=self.worker_id,
                    )
                )
                log.warning("released %d unfinished run(s) for the next start", len(unfinished))
        except Exception:
            # The store is unreachable: the runs stay leased and are rescued when it is back.
            log.exception("could not record the last outcomes at shutdown")
        if self._threads is not None:
            self._threads.shutdown(wait=False, cancel_futures=True)
            self._threads = None

    # ---- test signals (as River's JobRescuerTestSignals) ---------------------------------

    async def passed(self, count: int = 1) -> None:
        """Wait until the loop has made ``count`` more whole passes (record outcomes, renew and
        sweep when due, claim what is due). A test showing that nothing was due waits for this,
        never sleeps: a sleep passes when the dispatcher is merely late."""
        for _ in range(count):
            await self._pass_done.wait()

    def _signal_pass(self) -> None:
        self.passes += 1
        done, self._pass_done = self._pass_done, asyncio.Event()
        done.set()

    # ---- the loop -----------------------------------------------------------------------

    async def _main(self) -> None:
        while not self._stopping:
            try:
                await self._tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("dispatcher step failed; retrying in %.1fs", self.config.poll_seconds)
                await asyncio.sleep(self.config.poll_seconds)
                continue
            self._signal_pass()
            if self._stopping:
                break
            if not self._results:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.config.poll_seconds)
            self._wake.clear()

    async def _tick(self) -> None:
        mono = time.monotonic()
        sweep_due = mono - self._last_sweep >= self.config.sweep_seconds
        renew_due = mono - self._last_renew >= self.config.lease_seconds / 3
        if not (sweep_due or (self._running and renew_due) or self._outcomes_failing):
            # The common pass: recording the outcomes and the next claim are queued in the same
            # pass of the loop, so they share one group commit (one pass, not two, per cycle).
            flushing = asyncio.ensure_future(self._flush()) if self._results else None
            try:
                await self._claim()
            finally:
                if flushing is not None:
                    await flushing
            return
        await self._flush()
        # Renewing before each sweep means a sweep never takes this worker's own live runs.
        if self._running and (renew_due or sweep_due):
            self._last_renew = mono
            await self._renew()
        if sweep_due:
            self._last_sweep = mono
            await self.sweep()
        await self._claim()

    async def _flush(self) -> None:
        if not self._results:
            return
        results, self._results = self._results, []
        try:
            await self._finish(results)
            self._outcomes_failing = False
            return
        except Exception:
            log.warning("recording %d outcome(s) failed; trying one by one", len(results))
        # Find the outcome that cannot be stored (the rest go through one by one) and store a
        # stripped-down form of it. When even that fails the store is down: keep them all.
        for index, result in enumerate(results):
            try:
                await self._finish([result])
            except Exception as problem:
                try:
                    await self._finish([outcomes.minimal(result, problem)])
                    log.error("stored a stripped outcome for run %s: %r", result.run_id, problem)
                except Exception:
                    # Keep the outcomes for the next try: dropping them would re-run the runs.
                    self._results[:0] = results[index:]
                    self._outcomes_failing = True
                    raise
        self._outcomes_failing = False

    async def _finish(self, results: list[outcomes.AttemptResult]) -> None:
        await self.writer.run(
            partial(admin.finish_attempts, results=results, worker=self.worker_id)
        )

    def _now(self, conn: Connection) -> datetime:
        """ "Now" inside a transaction on ``conn``: the store's clock, or the test's."""
        clock = self.clock
        return clock.now(conn) if isinstance(clock, StoreClock) else clock()

    async def _renew(self) -> None:
        lease = timedelta(seconds=self.config.lease_seconds)
        ids = list(self._running)
        await self.writer.run(
            lambda conn: admin.renew_leases(
                conn, run_ids=ids, worker=self.worker_id, until=self._now(conn) + lease
            )
        )

    async def sweep(self) -> list[str]:
        """Rescue runs whose lease expired: their attempt is interrupted and they run again.

        The same transaction folds the run tally, so counting stays cheap.
        """
        rescued = await self.writer.run(lambda conn: _sweep(conn, now=self._now(conn)))
        if rescued:
            log.warning("rescued %d run(s) whose lease expired", len(rescued))
            self._wake.set()
        return rescued

    async def _claim(self) -> None:
        free = self.config.concurrency - len(self._running)
        if free <= 0 or self._stopping:
            return
        limits = self.config.queue_concurrency
        queue_free = {name: cap - self._running_queues[name] for name, cap in limits.items()}
        lease = timedelta(seconds=self.config.lease_seconds)

        def claim(conn: Connection) -> list[ClaimedRun]:
            now = self._now(conn)
            return admin.claim_due(
                conn,
                now=now,
                limit=free,
                worker=self.worker_id,
                lease_until=now + lease,
                queue_free=queue_free,
            )

        claimed = await self.writer.run(claim)
        if self._stopping:
            # Claimed while shutting down: hand them straight back.
            await self.writer.run(
                partial(
                    admin.interrupt_runs,
                    now=self.clock(),
                    reason="claimed during shutdown",
                    error_type="Shutdown",
                    run_ids=[run.id for run in claimed],
                    worker=self.worker_id,
                )
            )
            return
        for run in claimed:
            if run.queue:
                self._running_queues[run.queue] += 1
            task = asyncio.create_task(self._execute(run), name=f"notifyd-run-{run.id}")
            self._running[run.id] = task
        if len(claimed) == free:
            self._wake.set()

    # ---- one attempt --------------------------------------------------------------------

    async def _execute(self, run: ClaimedRun) -> None:
        started = time.perf_counter()
        try:
            try:
                response = await self._call(run)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                policy = self.retry.for_queue(run.queue)
                result = outcomes.failed(run, exc, started=started, now=self.clock(), policy=policy)
            else:
                result = outcomes.succeeded(run, response, started=started, now=self.clock())
            self._results.append(outcomes.storable(result))
        finally:
            # Whatever happened, the slot is free again: a run must never hold one for good.
            self._forget(run)
        self._wake.set()
        if self.on_attempt is not None:
            try:
                self.on_attempt(run, result)
            except Exception:  # an observer (metrics) must never stop delivery
                log.exception("attempt observer failed")

    def _forget(self, run: ClaimedRun) -> None:
        if self._running.pop(run.id, None) is not None and run.queue:
            self._running_queues[run.queue] -= 1

    async def _call(self, run: ClaimedRun) -> Any:
        task = self.registry.get(run.task_name)
        if task is None:
            raise PermanentError(f"no task is registered as {run.task_name!r} in this process")
        ctx = TaskContext(run_id=run.id, attempt=run.attempt, extras=self.extras)
        args, kwargs = task.call_args(run.args, ctx)
        if task.is_async:
            return await task.func(*args, **kwargs)
        loop = asyncio.get_running_loop()
        if self._threads is None:
            raise RuntimeError("the dispatcher is not running")
        return await loop.run_in_executor(self._threads, partial(task.func, *args, **kwargs))


def _sweep(conn: Connection, *, now: datetime) -> list[str]:
    rescued = admin.interrupt_runs(
        conn,
        now=now,
        reason="the worker stopped renewing its lease (it died or hung)",
        error_type="LeaseExpired",
        expired_before=now,
    )
    admin.compact_tally(conn)
    return rescued
