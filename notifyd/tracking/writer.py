"""Group commit: concurrent callers share each transaction; each waits for its own commit.

So "answered" keeps meaning "durable", but a burst of requests costs one transaction (and one
fsync) instead of one each. Inserts into the same table from every job of a batch go out as one
executemany. What one batch's commit does (merge, run, find the bad write, wake the callers) is
in ``batches``; here is where batches commit. Writes go through one thread, which owns its connection; SQLite never sees two
writers from this process, so none of them can fail with "database is locked".

``inline`` (SQLite without a per-commit fsync): the writes an event loop asks for are committed
on that loop, once per pass of it, with no hand-off to the thread: on a 2-core machine the
hand-offs cost a third of an accepted request. The loop must never wait on the store, so its
connection does not wait for the write lock: when another process holds it, the batch is tried
again on the loop a moment later, with the writes that came meanwhile (the thread, waiting,
would wait for the GIL the busy loop holds too), and goes to the thread only once the busy
timeout is spent. It also never checkpoints the WAL itself: the thread does, so
that copying pages back into the database never stalls the loop. Each checkpoint ends with a
short last pass during which the loop's batches wait, on the loop, until the thread says it is
over: a checkpoint that commits race past never catches up, so the WAL is never started over and
grows without end (a gigabyte per 60,000 notifications, each read searching more of it).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from notifyd.tracking import pipeline
from notifyd.tracking.batches import (
    Busy,
    Inserts,
    Job,
    Once,
    WriteFn,
    apply,
    commit,
    is_busy,
    settle,
    wake,
)
from notifyd.tracking.engine import WRITE_OPTION

T = TypeVar("T")

log = logging.getLogger(__name__)

_STOP = object()
# Inline commits between two WAL checkpoints by the thread (SQLite's own default is 1,000 pages).
CHECKPOINT_EVERY = 200
UNHELD_PASSES = 2
LOCK_POLL_FIRST = 0.0001  # seconds between the thread's looks at a held SQLite write lock
LOCK_POLL_MAX = 0.001  # checkpoint passes beside inline commits before the one that holds them


class Writer:
    """Runs writes on one thread, many per transaction.

    A write is rows to insert (merged with the batch's other inserts into the same tables, in
    the order tables first appear, so parents go before children) and/or a function run on the
    connection after the batch's inserts.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        max_batch: int = 256,
        inline: bool = False,
        before_commit: Callable[[], None] | None = None,
    ) -> None:
        self._engine = engine
        self.dialect = engine.dialect.name
        # Run in every transaction after its writes, before it commits: raising rolls it back
        # and fails its callers with that error (a store that can no longer keep what it is
        # given, say). Once per group commit, not once per write.
        self._before_commit = before_commit
        self.inline = inline and engine.dialect.name == "sqlite"
        self._pending: list[Job] = []
        self._flush_scheduled = False
        # Inline writes wait for the checkpoint's held pass to end (see ``_resume_inline``).
        self._after_checkpoint = False
        self._inline_loop: asyncio.AbstractEventLoop | None = None
        self._inline_conn: Connection | None = None
        self._since_checkpoint = 0
        self._max_batch = max_batch
        # Write transactions begun so far; inside a write function, the number of the one it
        # runs in. Numbered once begun: on SQLite the write lock is then held (BEGIN IMMEDIATE),
        # elsewhere only the thread writes, so a higher number began after a lower one
        # committed and saw all it wrote. Only this writer's transactions are numbered.
        self.transactions = 0
        self._queue: queue.SimpleQueue[Job | object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        # Held by the thread while it checkpoints and by the loop while it commits inline.
        self._checkpointing = threading.Lock()
        # Owned by the writer thread: one connection kept for its whole life (checking one out
        # of the pool per batch cost more than the batch's own statements).
        self._conn: Connection | None = None
        self._lock_wait = 0.0  # seconds a write waits for SQLite's write lock (see _begin)
        # Inline: whether the last commit found the lock held elsewhere; since when it has
        # been, and the pause before the next look (see ``_wait_inline``).
        self._lock_held = False
        self._held_since: float | None = None
        self._held_pause = LOCK_POLL_FIRST

    def start(self) -> None:
        """Start the writer thread (idempotent)."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._loop, name="notifyd-writer", daemon=True
                )
                self._thread.start()

    def stop(self) -> None:
        """Finish queued writes, then stop the thread."""
        # Writes still waiting for their loop's next pass go to the thread, which commits them
        # before it stops and wakes their callers through their loop.
        pending, self._pending = self._pending, []
        for job in pending:
            self._queue.put(job)
        if pending:
            self.start()
        self._close_inline()
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(_STOP)
            thread.join()

    def submit(
        self,
        fn: WriteFn[T] | None = None,
        *,
        inserts: Inserts = (),
        once: Once = (),
        pipelined: bool = False,
    ) -> Future[T]:
        """Queue a write; the future resolves after the transaction that ran it commits."""
        self.start()
        future: Future[T] = Future()
        self._queue.put(Job(fn, inserts, once, future=future, pipelined=pipelined))
        return future

    async def run(
        self,
        fn: WriteFn[T] | None = None,
        *,
        inserts: Inserts = (),
        once: Once = (),
        committed: Callable[[T], None] | None = None,
        pipelined: bool = False,
    ) -> T:
        """Run a write in the next group commit and wait for that commit; ``once``: writes
        its transaction needs once however many of its callers ask; ``committed``: called
        with the result in the pass that learns of the commit, a pass before the caller
        resumes; ``pipelined``: ``fn`` may run in a PostgreSQL pipeline (see
        ``batches.Job``)."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[T] = loop.create_future()
        job = Job(
            fn, inserts, once, waiter=waiter, loop=loop, committed=committed, pipelined=pipelined
        )
        if self._inline_loop is None and self.inline:
            self._inline_loop = loop
        if self.inline and loop is self._inline_loop:
            self._pending.append(job)
            if not self._flush_scheduled:
                self._flush_scheduled = True
                loop.call_soon(self._flush_inline)
        else:
            self.start()
            self._queue.put(job)
        return await waiter

    def run_sync(
        self,
        fn: WriteFn[T] | None = None,
        *,
        inserts: Inserts = (),
        once: Once = (),
        pipelined: bool = False,
    ) -> T:
        """Blocking form of :meth:`run`, for threads."""
        return self.submit(fn, inserts=inserts, once=once, pipelined=pipelined).result()

    def _loop(self) -> None:
        try:
            self._serve()
        finally:
            self._disconnect()

    def _serve(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            if first.checkpoint:  # type: ignore[attr-defined]
                self._checkpoint()
                continue
            batch: list[Job] = [first]  # type: ignore[list-item]
            stop_after = False
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop_after = True
                    break
                if item.checkpoint:  # type: ignore[attr-defined]
                    self._checkpoint()
                    continue
                batch.append(item)  # type: ignore[arg-type]
            self._commit(batch, self._connection)
            settle(batch)
            if stop_after:
                return

    def _connection(self) -> Connection:
        if self._conn is None or self._conn.invalidated or self._conn.closed:
            self._disconnect()
            conn = self._engine.connect()
            if conn.dialect.name == "sqlite":
                # The thread waits for the write lock itself (see ``_begin``), as long as the
                # engine's busy timeout says; this connection's pragma must then not reach the
                # pool's other users (``_disconnect`` drops it).
                try:
                    waited = conn.exec_driver_sql("PRAGMA busy_timeout").scalar()
                    conn.exec_driver_sql("PRAGMA busy_timeout=0")
                    conn.commit()
                except BaseException:
                    conn.invalidate()
                    conn.close()
                    raise
                self._lock_wait = int(waited or 0) / 1000
            self._conn = conn.execution_options(**{WRITE_OPTION: True})
        return self._conn

    def _begin(self, conn: Connection) -> Any:
        """Begin on ``conn``; on the thread's SQLite connection, wait for the write lock.

        SQLite's own busy handler sleeps 1, 2, 5, 10, 15, 20, 25 ms ... between looks: behind
        another process's frequent commits (a ``notifyd worker``'s) a write waited tens of
        milliseconds for a lock that was free most of that time. Looking every 0.1 ms at
        first, never less often than every millisecond, the wait ends soon after the lock is
        free.
        """
        if conn is self._inline_conn or not self._lock_wait:
            return conn.begin()
        deadline = time.monotonic() + self._lock_wait
        pause = LOCK_POLL_FIRST
        while True:
            try:
                return conn.begin()
            except OperationalError as exc:
                if not is_busy(exc) or time.monotonic() >= deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, LOCK_POLL_MAX)

    def _disconnect(self) -> None:
        if self._conn is not None:
            try:
                if self._lock_wait:
                    self._conn.invalidate()  # its busy timeout of 0 stays with it
                self._conn.close()
            except Exception:  # a dead connection may fail to close; it is dropped either way
                log.debug("closing the writer's connection failed", exc_info=True)
            self._conn = None

    def _apply(self, conn: Connection, jobs: list[Job]) -> list[Any]:
        self.transactions += 1
        results = apply(conn, jobs)
        if self._before_commit is not None:
            self._before_commit()
        return results

    def _transaction(self, conn: Connection, jobs: list[Job]) -> list[Any]:
        try:
            # On PostgreSQL, writes that need no answers go out together (``pipeline``).
            if pipeline.available(conn) and all(job.pipelined or job.fn is None for job in jobs):
                return pipeline.transaction(conn, lambda: self._apply(conn, jobs))
            try:
                transaction = self._begin(conn)
            except OperationalError as exc:
                if conn is self._inline_conn and is_busy(exc):
                    self._lock_held = True
                    raise Busy from exc
                raise
            with transaction:
                return self._apply(conn, jobs)
        except DBAPIError as exc:
            if exc.connection_invalidated:
                if conn is self._inline_conn:
                    self._close_inline()
                else:
                    self._disconnect()
            raise

    def _commit(self, batch: list[Job], connect: Callable[[], Connection]) -> list[Job]:
        return commit(batch, lambda jobs: self._transaction(connect(), jobs))

    # ---- inline: on the event loop ----------------------------------------------------------

    def _inline_connection(self) -> Connection:
        conn = self._inline_conn
        if conn is None or conn.invalidated or conn.closed:
            try:
                plain = self._engine.connect()  # a read BEGIN: setting pragmas takes no lock
                # Never wait for the write lock on the loop (``_wait_inline`` looks again
                # later, as long as the engine's timeout says); never checkpoint on it either.
                waited = plain.exec_driver_sql("PRAGMA busy_timeout").scalar()
                self._lock_wait = int(waited or 0) / 1000
                plain.exec_driver_sql("PRAGMA busy_timeout=0")
                plain.exec_driver_sql("PRAGMA wal_autocheckpoint=0")
                plain.commit()
            except Exception as exc:  # whatever it was, the thread can still try
                raise Busy from exc
            conn = self._inline_conn = plain.execution_options(**{WRITE_OPTION: True})
        return conn

    def _close_inline(self) -> None:
        conn, self._inline_conn = self._inline_conn, None
        if conn is not None:
            try:
                conn.invalidate()  # its pragmas must not reach the pool's other users
                conn.close()
            except Exception:
                log.debug("closing the inline connection failed", exc_info=True)

    def _flush_inline(self) -> None:
        self._flush_scheduled = False
        batch, self._pending = self._pending, []
        if not batch:
            return
        if not self._checkpointing.acquire(blocking=False):
            # The checkpoint's held pass: these wait on this loop, with the writes that come
            # meanwhile, until the thread says it is over (see ``_resume_inline``). Handed to the
            # thread, they waited for the GIL the busy loop holds, at each statement.
            self._pending[:0] = batch
            self._flush_scheduled = True
            self._after_checkpoint = True
            if not self._checkpointing.acquire(blocking=False):
                return  # still held: the thread sees the flag once it lets go
            self._checkpointing.release()  # let go meanwhile: flush now, as if never held
            self._after_checkpoint = False
            self._flush_inline()
            return
        self._lock_held = False
        try:
            undone = self._commit(batch, self._inline_connection)
        finally:
            self._checkpointing.release()
        done = batch[: len(batch) - len(undone)]
        if undone:
            self._wait_inline(undone)
        else:
            self._held_since = None
        wake(done)
        self._since_checkpoint += 1
        if self._since_checkpoint >= CHECKPOINT_EVERY:
            self._since_checkpoint = 0
            self.start()
            self._queue.put(Job(None, (), checkpoint=True))

    def _wait_inline(self, undone: list[Job]) -> None:
        """Another process holds the write lock: look again on this loop in 0.1-1 ms, with
        the writes that come meanwhile, for as long as the busy timeout allows; then the
        thread waits. (Handed to the thread at once, a batch waited for the GIL too: the loop
        holds it while busy, so each of the thread's statements waited for the loop.)"""
        now = time.monotonic()
        if self._held_since is None or not self._lock_held:
            self._held_since, self._held_pause = now, LOCK_POLL_FIRST
        loop = self._inline_loop
        if not self._lock_held or loop is None or now - self._held_since >= self._lock_wait:
            self._held_since = None
            for job in undone:
                self._queue.put(job)  # the thread waits for the lock, then wakes these callers
            self.start()
            return
        self._pending[:0] = undone  # ahead of the writes that came since
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_later(self._held_pause, self._flush_inline)
        self._held_pause = min(self._held_pause * 2, LOCK_POLL_MAX)

    def _resume_inline(self) -> None:
        """On the thread, once the held pass is over: the loop's writes that waited for it go
        now. (The loop sets the flag before it looks at the lock a second time, and the thread
        reads it after letting go, so one of the two always sees the other.)"""
        loop = self._inline_loop
        if self._after_checkpoint and loop is not None:
            self._after_checkpoint = False
            try:
                loop.call_soon_threadsafe(self._flush_inline)
            except RuntimeError:  # the loop is closed: ``stop`` hands its writes to the thread
                log.debug("the inline loop closed during a checkpoint")

    def _checkpoint(self) -> None:
        # Outside any transaction, on a connection of its own, with no inline commit under way
        # or begun until it ends (see the module).
        try:
            raw = self._engine.raw_connection()
            try:
                driver: Any = raw.driver_connection
                # The pages are copied while commits go on, then those they added meanwhile;
                # then, with none under way, the last few: the lock is held ~2 ms, not ~26 ms.
                for _ in range(UNHELD_PASSES):
                    driver.execute("PRAGMA wal_checkpoint(PASSIVE)")
                try:
                    with self._checkpointing:
                        driver.execute("PRAGMA wal_checkpoint(PASSIVE)")
                finally:
                    self._resume_inline()
            finally:
                raw.close()
        except Exception:
            log.warning("WAL checkpoint failed; the next one will try again", exc_info=True)
