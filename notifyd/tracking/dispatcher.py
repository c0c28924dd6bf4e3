"""The dispatcher: claims due runs, runs them with bounded concurrency, records every attempt.

One asyncio task loops: record finished attempts, renew leases, sweep expired leases, claim as
many due runs as there are free slots, sleep until woken (a submit, a finished run) or the poll
interval passes. All its writes go through the group-commit Writer, in batches. One attempt is
``execution``'s; recording the outcomes is ``recording``'s.

A claim that took every due run it could leaves the dispatcher *drained*: it claims again only
when woken by new queued runs, when a capped queue that may hold more frees a slot, or when the
poll interval passes. While drained, a commit in this process may hand its new runs straight to
the dispatcher's free slots (``handoff``): they are stored already claimed, so they cost no claim
and are never seen queued, and older due runs still go first (a hand-off waits for a drain). So
may a commit during a claim that follows one which took less than it could: that claim leaves a
few slots out for them. It sees every older due run; only a burst of them larger than what it
may take would be overtaken, by those few.

A claim that follows a full one (a backlog waits) while attempts are short also *prefetches*:
it takes up to ``concurrency`` due runs beyond the free slots, kept in memory, claimed and
leased, each started the moment a slot frees. Without it a backlog of short runs was worked
off one claim of ``concurrency`` per cycle of claim, start, finish and record, slower than a
steady load brought new ones, so the backlog (and every run's wait) grew for as long as the
load lasted. Within the same bound a hand-off while drained may take a run with no free slot:
stored queued, it ended the drain, and every later run was queued until claims caught up.
Slow attempts prefetch nothing and hand off only into free slots: the runs would wait in this
process while another worker had slots for them. Nor does a process whose oldest ready run has
waited longer than a short attempt takes (its slots are held by attempts that hang).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import Connection

from notifyd.tracking import admin, leases
from notifyd.tracking.admin import ClaimedRun
from notifyd.tracking.clock import StoreClock
from notifyd.tracking.execution import AttemptObserver, AttemptScope, Executor
from notifyd.tracking.leases import DispatcherConfig, default_worker_id
from notifyd.tracking.recording import Outcomes
from notifyd.tracking.registry import TaskRegistry
from notifyd.tracking.retry import RetryPolicies
from notifyd.tracking.writer import Writer

log = logging.getLogger(__name__)

# At most this many free slots a claim leaves to hand-offs while it runs (see ``_claim``).
CLAIM_ROOM = 8
# Prefetch (see the module) only while attempts take less than this on average: a prefetched
# run then waits for a slot about that long, not a slow attempt's time.
PREFETCH_BELOW_SECONDS = 0.05
# The weight of the latest attempt in that average.
_DURATION_WEIGHT = 0.1

Clock = Callable[[], datetime]
__all__ = [
    "AttemptObserver",
    "AttemptScope",
    "Clock",
    "Dispatcher",
    "DispatcherConfig",
    "default_worker_id",
]


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
        attempt_scope: AttemptScope | None = None,
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
        self.attempt_scope = attempt_scope  # around each attempt (notifyd: its trace span)
        self.executor = Executor(
            registry=registry, retry=retry, extras=self.extras, clock=self.clock
        )
        self._outcomes = Outcomes(writer, self.worker_id)
        self._running: dict[str, asyncio.Task[None]] = {}
        self._running_queues: Counter[str] = Counter()
        # Claimed (leased) runs waiting for a slot, oldest first, with when each began to wait
        # (see the module), and of them those in capped queues.
        self._ready: deque[tuple[ClaimedRun, float]] = deque()
        self._ready_queues: Counter[str] = Counter()
        self._attempt_seconds = 0.0  # the attempts' average duration (see ``_execute``)
        # Slots promised to runs being committed by a hand-off (see the module), and of them
        # those in capped queues.
        self._reserved = 0
        self._reserved_queues: Counter[str] = Counter()
        self._drained = False
        self._wakes = 0  # calls of ``wake``: one during a claim may be for runs it missed
        # The latest writer transaction that committed runs a wake-up was for: a claim in an
        # earlier one may have missed them. Under a steady load a claim's own transaction
        # commits new queued runs too: counting those as missed kept the dispatcher claiming
        # for good, each run paying for a claim, where hand-offs cost none.
        self._woken_in = 0
        self._claiming = False
        # While claiming: the slots the claim may fill, and whether the rest may take
        # hand-offs meanwhile (see ``_claim``).
        self._claim_limit = 0
        self._claim_leaves_room = False
        self._last_claim_full = True  # the last claim took all it could: a backlog may wait
        # Capped queues whose due runs may outnumber their free slots: their next finished run
        # claims again, and their new runs are not handed off (older ones go first).
        self._backlogged: set[str] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self._loop_task: asyncio.Task[None] | None = None
        self._last_renew = 0.0
        self._last_sweep = 0.0
        self._last_fold = 0.0
        self._looked_at = 0.0  # when the last claim looked for due runs (see ``_main``)
        self._poll_due = False  # the poll interval passed since: a claim looks even if drained
        # On SQLite the tally is folded often (see ``leases.FOLD_SECONDS``): a fold holds the
        # store's one write lock, and the loop commits inline. PostgreSQL folds at each sweep,
        # in one statement beside other writers.
        self._folds = writer.dialect == "sqlite"
        self.passes = 0  # whole passes of the loop so far (see ``passed``)
        self._pass_done = asyncio.Event()

    # ---- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Start the loop; it sweeps expired leases at once."""
        if self._loop_task is None:
            self._stopping = False
            self.executor.start(self.config.concurrency)
            self._loop = asyncio.get_running_loop()
            self._drained = False
            self._loop_task = asyncio.create_task(self._main(), name="notifyd-dispatcher")

    def wake(self, transaction: int | None = None) -> None:
        """Look for due runs now (called after new runs are committed).

        ``transaction``: the writer's number of the transaction that committed them (see
        ``Writer.transactions``), when it was this dispatcher's writer. A claim made in that
        transaction or a later one has seen them, so such a wake-up does not keep the
        dispatcher from being drained after it.
        """
        self._drained = False
        if transaction is None:
            self._wakes += 1
        elif transaction > self._woken_in:
            self._woken_in = transaction
        self._wake.set()

    # ---- hand-off: runs committed as this dispatcher's (see ``handoff``) -----------------

    def reserve(self, queue: str | None) -> bool:
        """Promise a slot to a run about to be committed as claimed by this dispatcher.

        Only while drained (no older due run waits), or during a claim that left slots for
        hand-offs (see ``_claim``; not for capped queues, whose free slots it counted), and on
        the dispatcher's own loop; each promise ends in ``adopt`` or ``unreserve``. While
        drained and attempts are short, a run with no free slot may wait ready for one, as a
        prefetched run does (see the module): a burst larger than the slots is then stored
        claimed, not queued for claims to work off.
        """
        if self._stopping or self._loop_task is None:
            return False
        cap = self.config.queue_concurrency.get(queue) if queue is not None else None
        held = len(self._running) + self._reserved + len(self._ready)
        limit = self.config.concurrency
        if self._claiming:
            if not self._claim_leaves_room or cap is not None:
                return False
            held += self._claim_limit
        elif not self._drained:
            return False
        else:
            limit += self._prefetch()
        if held >= limit:
            return False
        if cap is not None and queue is not None:
            if queue in self._backlogged or (
                self._running_queues[queue]
                + self._reserved_queues[queue]
                + self._ready_queues[queue]
                >= cap
            ):
                return False
            self._reserved_queues[queue] += 1
        self._reserved += 1
        return True

    def on_own_loop(self) -> bool:
        """Whether the caller runs on the loop this dispatcher runs on (a hand-off's must)."""
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False

    def unreserve(self, queue: str | None) -> None:
        """Give back a slot promised by ``reserve`` (its commit failed)."""
        self._unreserve(queue)
        self._fill()

    def _unreserve(self, queue: str | None) -> None:
        self._reserved -= 1
        if queue is not None and queue in self._reserved_queues:
            self._reserved_queues[queue] -= 1

    def adopt(self, claimed: list[ClaimedRun]) -> None:
        """Execute runs committed as claimed by this dispatcher, each once a slot is free."""
        for run in claimed:
            self._unreserve(run.queue)
        if self._stopping:
            # Committed as ours while stopping: handed straight back, as a late claim is.
            self.writer.submit(self._give_back(claimed, "handed over during shutdown"))
            return
        self._take(claimed)

    @property
    def drained(self) -> bool:
        """Whether the last claim found every due run it could take, and nothing woke the
        dispatcher since: new runs may then be handed to it at their commit."""
        return self._drained

    @property
    def prefetched(self) -> list[str]:
        """The runs claimed ahead of a free slot, oldest first (see the module)."""
        return [run.id for run, _since in self._ready]

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
        # Prefetched runs never started: given back with those the grace period cuts short.
        waiting = self.prefetched
        self._ready.clear()
        self._ready_queues.clear()
        pending = list(self._running.values())
        if pending:
            log.info("waiting up to %.0fs for %d running task(s)", grace, len(pending))
            _done, still = (
                await asyncio.wait(pending, timeout=grace) if grace > 0 else ((), pending)
            )
            unfinished = [run_id for run_id, task in self._running.items() if task in still]
            unfinished += waiting
            for task in still:
                task.cancel()
            if still:
                await asyncio.gather(*still, return_exceptions=True)
        else:
            unfinished = waiting
        try:
            await self._outcomes.flush()
            if unfinished:
                reason = f"worker {self.worker_id} shut down before the attempt finished"
                await self.writer.run(
                    lambda conn: leases.release(
                        conn,
                        now=self._now(conn),
                        reason=reason,
                        run_ids=unfinished,
                        worker=self.worker_id,
                    )
                )
                log.warning("released %d unfinished run(s) for the next start", len(unfinished))
        except Exception:
            # The store is unreachable: the runs stay leased and are rescued when it is back.
            log.exception("could not record the last outcomes at shutdown")
        self.executor.stop()

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
            if not self._outcomes.pending:
                poll = self._looked_at + self.config.poll_seconds - time.monotonic()
                if poll <= 0:  # overdue only when every slot was busy: wait for one to free
                    poll = self.config.poll_seconds
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), poll)
            self._wake.clear()
            if time.monotonic() - self._looked_at >= self.config.poll_seconds:
                # The poll: runs may have come due meanwhile (a retry, a scheduled run: nothing
                # wakes the dispatcher for those). Counted from the last claim, not the last
                # wake-up: every finished run wakes it, so a steady trickle of hand-offs kept
                # it from ever claiming them. The drain stands meanwhile (hand-offs go on, into
                # the slots the claim leaves them): ended at each poll, under a steady load it
                # gave way to claims for every run, which need more passes per run.
                self._poll_due = True

    async def _tick(self) -> None:
        mono = time.monotonic()
        sweep_due = mono - self._last_sweep >= self.config.sweep_seconds
        renew_due = mono - self._last_renew >= self.config.lease_seconds / 3
        held = self._running or self._ready
        if not (sweep_due or (held and renew_due) or self._outcomes.failing):
            # The common pass: recording the outcomes, a fold of the tally when due and the
            # next claim are queued in the same pass of the loop, so they share one group
            # commit (one pass, not two, per cycle).
            flushing = (
                asyncio.ensure_future(self._outcomes.flush()) if self._outcomes.pending else None
            )
            folding = (
                asyncio.ensure_future(self._fold())
                if self._folds and mono - self._last_fold >= leases.FOLD_SECONDS
                else None
            )
            try:
                await self._claim()
            finally:
                if flushing is not None:
                    await flushing
                if folding is not None:
                    await folding
            return
        await self._outcomes.flush()
        # Renewing before each sweep means a sweep never takes this worker's own live runs.
        if (self._running or self._ready) and (renew_due or sweep_due):
            self._last_renew = mono
            await self._renew()
        if sweep_due:
            self._last_sweep = mono
            await self.sweep()
        await self._claim()

    def _now(self, conn: Connection) -> datetime:
        """ "Now" inside a transaction on ``conn``: the store's clock, or the test's."""
        clock = self.clock
        return clock.now(conn) if isinstance(clock, StoreClock) else clock()

    async def _renew(self) -> None:
        ids, seconds = [*self._running, *self.prefetched], self.config.lease_seconds
        await self.writer.run(
            lambda conn: leases.renew(
                conn, run_ids=ids, worker=self.worker_id, now=self._now(conn), seconds=seconds
            )
        )

    async def _fold(self) -> None:
        self._last_fold = time.monotonic()
        try:
            await self.writer.run(leases.fold_tally)
        except Exception:  # counting gets slower, delivering must not stop: the sweep folds too
            log.exception("folding the run tally failed")
            return

    async def sweep(self) -> list[str]:
        """Rescue runs whose lease expired: their attempt is interrupted and they run again
        (the same transaction folds the run tally, so counting stays cheap)."""
        rescued = await self.writer.run(lambda conn: leases.sweep(conn, now=self._now(conn)))
        if rescued:
            log.warning("rescued %d run(s) whose lease expired", len(rescued))
            self.wake()
        return rescued

    async def _claim(self) -> None:
        concurrency = self.config.concurrency
        free = concurrency - len(self._running) - self._reserved - len(self._ready)
        if free <= 0 or self._stopping or (self._drained and not self._poll_due):
            return
        # Unless the last claim was full (a backlog may wait: it goes first, in whole claims),
        # some slots stay out of the claim for runs committed meanwhile. Stored queued instead,
        # they would need the next claim, and under a steady load each claim's pass commits
        # more: the dispatcher went on claiming in bursts where hand-offs cost nothing.
        # After a full claim, short attempts prefetch (see the module).
        if self._last_claim_full:
            room, extra = 0, self._prefetch()
        else:
            room, extra = min(free // 2, CLAIM_ROOM), 0
        limit = free - room + extra
        limits = self.config.queue_concurrency
        queue_free = {
            name: cap
            - self._running_queues[name]
            - self._reserved_queues[name]
            - self._ready_queues[name]
            for name, cap in limits.items()
        }
        lease = self.config.lease_seconds

        seen_in = 0  # the claim's own transaction

        def claim(conn: Connection) -> list[ClaimedRun]:
            nonlocal seen_in
            seen_in = self.writer.transactions
            clock = self.clock
            if isinstance(clock, StoreClock) and conn.dialect.name == "postgresql":
                # The database's clock, read by the claim itself (a query of its own was a
                # third of a claim's time); the process's clock follows it.
                before = clock.local()
                now, claimed = admin.claim_runs(
                    conn, limit=limit, worker=self.worker_id, lease_seconds=lease,
                    queue_free=queue_free,
                )  # fmt: skip
                if now is not None:
                    clock.observed(now, before, clock.local())
                return claimed
            return admin.claim_runs(
                conn, now=self._now(conn), limit=limit, worker=self.worker_id,
                lease_seconds=lease, queue_free=queue_free,
            )[1]  # fmt: skip

        wakes = self._wakes
        self._looked_at, self._poll_due = time.monotonic(), False
        self._claiming, self._claim_limit, self._claim_leaves_room = True, limit, room > 0
        started = False

        def start(claimed: list[ClaimedRun]) -> None:
            # In the pass that learns of the commit: the claim's caller resumes a pass later,
            # and the runs it started then ran a pass after that. Under a steady load that
            # made a cycle of claims four passes long where three will do.
            nonlocal started
            if not self._stopping:
                started = True
                self._take(claimed)

        try:
            claimed = await self.writer.run(claim, committed=start, pipelined=True)
        finally:
            self._claiming = False
        if not started:
            if self._stopping:
                # Claimed while shutting down: hand them straight back.
                await self.writer.run(self._give_back(claimed, "claimed during shutdown"))
                return
            self._take(claimed)
        taken = Counter(run.queue for run in claimed if run.queue in limits)
        self._backlogged = {name for name, left in queue_free.items() if taken[name] >= left}
        self._last_claim_full = len(claimed) >= limit
        self._drained = len(claimed) < limit and self._wakes == wakes and self._woken_in <= seen_in
        if not self._drained:
            self._wake.set()

    def _give_back(self, claimed: list[ClaimedRun], reason: str) -> Callable[[Connection], Any]:
        """The write releasing ``claimed`` at once (interrupted, due again)."""
        ids = [run.id for run in claimed]
        return partial(
            leases.release, now=self.clock(), reason=reason, run_ids=ids, worker=self.worker_id
        )

    def _take(self, claimed: list[ClaimedRun]) -> None:
        """Start claimed runs in the free slots; keep the rest ready for the next ones."""
        now = time.monotonic()
        for run in claimed:
            self._ready.append((run, now))
            if run.queue:
                self._ready_queues[run.queue] += 1
        self._fill()

    def _prefetch(self) -> int:
        """How many runs may wait ready beyond the slots (see the module).

        None once a ready run has waited longer than a short attempt takes, whatever the
        average says: every slot is held by attempts that hang (a peer timing out, say), and
        new runs are better stored queued, where another worker may claim them.
        """
        limit = PREFETCH_BELOW_SECONDS
        ready = self._ready
        if self._attempt_seconds >= limit or (ready and time.monotonic() - ready[0][1] > limit):
            return 0
        return self.config.concurrency

    def _fill(self) -> None:
        """Start ready runs, oldest first, while slots are free (never while stopping).

        Slots promised to hand-offs still being committed do not hold these back: such a run
        finds its slot taken at its commit and waits ready behind the older ones.
        """
        ready, concurrency = self._ready, self.config.concurrency
        while ready and not self._stopping:
            if len(self._running) >= concurrency:
                return
            run, _since = ready.popleft()
            if run.queue:
                self._ready_queues[run.queue] -= 1
            self._start_run(run)

    def _start_run(self, run: ClaimedRun) -> None:
        if run.queue:
            self._running_queues[run.queue] += 1
        task = asyncio.create_task(self._execute(run), name=f"notifyd-run-{run.id}")
        self._running[run.id] = task

    # ---- one attempt --------------------------------------------------------------------

    async def _execute(self, run: ClaimedRun) -> None:
        began = time.monotonic()
        try:
            result = await self.executor.attempt(run, self.attempt_scope)
            self._outcomes.add(result)
        finally:
            # Whatever happened, the slot is free again: a run must never hold one for good.
            self._forget(run)
            took = time.monotonic() - began
            self._attempt_seconds += (took - self._attempt_seconds) * _DURATION_WEIGHT
            self._fill()
        self._wake.set()
        if self.on_attempt is not None:
            try:
                self.on_attempt(run, result)
            except Exception:  # an observer (metrics) must never stop delivery
                log.exception("attempt observer failed")

    def _forget(self, run: ClaimedRun) -> None:
        if self._running.pop(run.id, None) is not None and run.queue:
            self._running_queues[run.queue] -= 1
            if run.queue in self._backlogged:
                self._drained = False  # a slot of a queue that may have more due runs
