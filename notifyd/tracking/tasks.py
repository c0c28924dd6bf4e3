"""TrackedTasks: take it where a route would take BackgroundTasks, and the runs become durable.

    @registry.task("send_report")
    def send_report(user_id: int) -> None: ...

    @app.post("/reports")
    async def create(tasks: TrackedTasks) -> dict[str, str]:
        run_id = tasks.add_task(send_report, 42)
        return {"run": run_id}

``add_task`` stages a run; the staged runs (and any rows added with ``add_write``) are committed
in one transaction after the handler returns and before the response is sent. A handler that
needs the commit earlier (to answer with what was stored) awaits ``tasks.commit()`` itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import Connection, Table

from notifyd.tracking.clock import new_id
from notifyd.tracking.handoff import hand_off, release
from notifyd.tracking.models import RUN_ID_PREFIX, RunStatus, runs
from notifyd.tracking.notify import notify_runs
from notifyd.tracking.tracker import APP_STATE_KEY, Tracker


class TaskBatch:
    """Runs (and other rows) staged by one request, committed together."""

    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker
        self._runs: list[dict[str, Any]] = []
        self._inserts: list[tuple[Table, list[Mapping[str, Any]]]] = []
        self._writes: list[Callable[[Connection], Any]] = []
        self._after: list[Callable[[], None]] = []
        self.committed = False

    def add_task(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> str:
        """Stage a run of the registered task ``func``; returns the run id."""
        return self.add_run(func, args=args, kwargs=kwargs)

    def add_run(
        self,
        func: Callable[..., Any] | str,
        *,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        queue: str | None = None,
        label: str | None = None,
        ref: str | None = None,
        max_attempts: int | None = None,
        now: datetime | None = None,
        run_at: datetime | None = None,
    ) -> str:
        """Stage a run with its generic columns: ``queue`` (its retry policy and concurrency
        limit), ``label`` (shown to operators), ``ref`` (the caller's object it belongs to).

        ``max_attempts`` overrides the queue's retry budget; ``run_at`` delays the first attempt.
        """
        if self.committed:
            raise RuntimeError("this batch was already committed")
        registry = self.tracker.registry
        task = registry.get(func) if isinstance(func, str) else registry.lookup(func)
        if task is None:
            raise LookupError(f"no task is registered as {func!r}")
        arguments = task.bind(args, kwargs or {})
        tracker = self.tracker
        when = now or tracker.clock()
        run_id = new_id(RUN_ID_PREFIX, at=when)
        capture = tracker.trace_context
        self._runs.append(
            {
                "id": run_id,
                "task_name": task.name,
                "queue": queue,
                "label": label,
                "ref": ref,
                "args": arguments,
                "status": RunStatus.queued.value,
                "attempts": 0,
                "max_attempts": max_attempts or tracker.retry.budget(queue),
                "interruptions": 0,
                "created_at": when,
                "updated_at": when,
                "next_attempt_at": run_at or when,
                "trace_context": capture() if capture is not None else None,
                # Set when a hand-off stores the run claimed (see ``handoff``); every staged
                # row has the same columns, so a group commit inserts them in one statement.
                "worker": None,
                "lease_expires_at": None,
                "started_at": None,
                "attempt_started_at": None,
            }
        )
        return run_id

    def add_insert(self, table: Table, rows: list[Mapping[str, Any]]) -> None:
        """Stage rows to insert in the same transaction, before the runs (parents first)."""
        self._inserts.append((table, rows))

    def add_write(self, fn: Callable[[Connection], Any]) -> None:
        """Stage another write for the same transaction; it runs after every insert."""
        self._writes.append(fn)

    def on_commit(self, fn: Callable[[], None]) -> None:
        """Call ``fn`` once the batch is committed, in the pass of the loop that learns of
        it (before ``commit`` returns, and before its runs start); if it raises, the error is
        logged and the commit stands."""
        self._after.append(fn)

    @property
    def pending(self) -> bool:
        """Whether anything is staged and not yet committed."""
        return bool(self._runs or self._inserts or self._writes) and not self.committed

    def discard(self) -> None:
        """Forget everything staged and not committed: nothing of it will be written."""
        self._runs, self._inserts, self._writes, self._after = [], [], [], []

    async def commit(self) -> None:
        """Commit everything staged in one transaction and wake the dispatcher.

        A commit that fails discards what was staged: the caller decides what to answer, and
        the dependency must not try the same failing transaction again after the handler.
        """
        if self.committed:
            return
        writes, staged = list(self._writes), list(self._runs)
        tracker = self.tracker
        dispatcher = tracker.dispatcher if tracker.run_dispatcher else None
        taken = hand_off(dispatcher, self._runs) if dispatcher is not None and staged else None
        queued = len(staged) - (len(taken.claimed) if taken is not None else 0)
        # Other processes' dispatchers look at once; one NOTIFY per group commit, not one per
        # caller (PostgreSQL delivers one of a transaction's identical notifications anyway).
        once = (notify_runs,) if queued and tracker.notifies else ()

        writer = tracker.writer
        committed_in = 0

        def write(conn: Connection) -> None:
            nonlocal committed_in
            for fn in writes:
                fn(conn)
            committed_in = writer.transactions

        adopted = False

        def on_commit(_: Any) -> None:
            # In the pass that learns of the commit (a pass before this caller resumes): the
            # handed-off runs start a pass sooner, and start even if the caller is cancelled
            # meanwhile (they used to wait for the lease sweep). ``on_commit`` functions go
            # first (the notification cache their deliveries read), and their failure does
            # not keep the runs from their slots.
            nonlocal adopted
            self.committed = True
            try:
                for fn in self._after:
                    fn()
            finally:
                if dispatcher is not None and taken is not None and taken.claimed:
                    adopted = True
                    dispatcher.adopt(taken.claimed)

        inserts: list[tuple[Table, Sequence[Mapping[str, Any]]]] = [*self._inserts, (runs, staged)]
        try:
            await writer.run(
                write if writes or queued else None,
                inserts=inserts,
                once=once,
                committed=on_commit,
                pipelined=not writes,  # staged writes may read what their statements return
            )
        except BaseException:
            if dispatcher is not None and taken is not None and not adopted:
                release(dispatcher, taken)
            self.discard()
            raise
        if queued:
            tracker.committed(committed_in or None)


def get_tracker(request: Request) -> Tracker:
    """The app's Tracker (set by ``Tracker.lifespan`` or ``create_app``)."""
    tracker: Tracker | None = getattr(request.app.state, APP_STATE_KEY, None)
    if tracker is None:
        raise RuntimeError("no Tracker on this app: use FastAPI(lifespan=tracker.lifespan)")
    return tracker


async def _tracked_tasks(request: Request) -> AsyncIterator[TaskBatch]:
    batch = TaskBatch(get_tracker(request))
    yield batch
    # Reached only when the handler returned normally: a failed request stages nothing.
    if batch.pending:
        await batch.commit()


TrackedTasks = Annotated[TaskBatch, Depends(_tracked_tasks, scope="function")]
