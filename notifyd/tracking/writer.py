"""Group commit: one thread owns the store's writes; concurrent callers share each transaction.

Each caller still waits for the commit that holds its own write, so "answered" keeps meaning
"durable", but a burst of requests costs one transaction (and one fsync) instead of one each.
Inserts into the same table from every job of a batch go out as one executemany, and the
waiting coroutines of a batch are woken with one call into their event loop. It also means
SQLite never sees two writers from this process, so none of them can fail with
"database is locked".
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Insert, Table, insert
from sqlalchemy.exc import DBAPIError

from notifyd.tracking.engine import WRITE_OPTION

T = TypeVar("T")
WriteFn = Callable[[Connection], T]
Inserts = Sequence[tuple[Table, Sequence[Mapping[str, Any]]]]

log = logging.getLogger(__name__)

_STOP = object()


@dataclass
class _Job:
    fn: WriteFn[Any] | None
    inserts: Inserts
    future: Future[Any] | None = None
    waiter: asyncio.Future[Any] | None = None
    loop: asyncio.AbstractEventLoop | None = None
    outcome: tuple[Any, BaseException | None] = field(default=(None, None))


class Writer:
    """Runs writes on one thread, many per transaction.

    A write is rows to insert (merged with the batch's other inserts into the same tables, in
    the order tables first appear, so parents go before children) and/or a function run on the
    connection after the batch's inserts.
    """

    def __init__(self, engine: Engine, *, max_batch: int = 256) -> None:
        self._engine = engine
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Job | object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        # Owned by the writer thread: one connection kept for its whole life (checking one out
        # of the pool per batch cost more than the batch's own statements).
        self._conn: Connection | None = None
        self._inserts: dict[Table, Insert] = {}

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
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(_STOP)
            thread.join()

    def submit(self, fn: WriteFn[T] | None = None, *, inserts: Inserts = ()) -> Future[T]:
        """Queue a write; the future resolves after the transaction that ran it commits."""
        self.start()
        future: Future[T] = Future()
        self._queue.put(_Job(fn, inserts, future=future))
        return future

    async def run(self, fn: WriteFn[T] | None = None, *, inserts: Inserts = ()) -> T:
        """Run a write in the next group commit and wait for that commit."""
        self.start()
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Job(fn, inserts, waiter=waiter, loop=loop))
        return await waiter

    def run_sync(self, fn: WriteFn[T] | None = None, *, inserts: Inserts = ()) -> T:
        """Blocking form of :meth:`run`, for threads."""
        return self.submit(fn, inserts=inserts).result()

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
            batch: list[_Job] = [first]  # type: ignore[list-item]
            stop_after = False
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop_after = True
                    break
                batch.append(item)  # type: ignore[arg-type]
            self._commit(batch)
            self._settle(batch)
            if stop_after:
                return

    def _connection(self) -> Connection:
        if self._conn is None or self._conn.invalidated or self._conn.closed:
            self._disconnect()
            self._conn = self._engine.connect().execution_options(**{WRITE_OPTION: True})
        return self._conn

    def _disconnect(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # a dead connection may fail to close; it is dropped either way
                log.debug("closing the writer's connection failed", exc_info=True)
            self._conn = None

    def _transaction(self, jobs: list[_Job]) -> list[Any]:
        conn = self._connection()
        try:
            with conn.begin():
                return self._apply(conn, jobs)
        except DBAPIError as exc:
            if exc.connection_invalidated:
                self._disconnect()
            raise

    def _apply(self, conn: Connection, jobs: list[_Job]) -> list[Any]:
        merged: dict[Table, list[Mapping[str, Any]]] = {}
        for job in jobs:
            for table, rows in job.inserts:
                merged.setdefault(table, []).extend(rows)
        for table, rows in merged.items():
            if rows:
                statement = self._inserts.get(table)
                if statement is None:
                    statement = self._inserts[table] = insert(table)
                conn.execute(statement, rows)
        return [job.fn(conn) if job.fn is not None else None for job in jobs]

    def _commit(self, batch: list[_Job]) -> None:
        try:
            results = self._transaction(batch)
        except Exception as exc:
            if len(batch) == 1:
                batch[0].outcome = (None, exc)
                return
            # One bad write must not fail its neighbours: run each alone to find it.
            for job in batch:
                try:
                    job.outcome = (self._transaction([job])[0], None)
                except Exception as single:
                    job.outcome = (None, single)
            return
        for job, result in zip(batch, results, strict=True):
            job.outcome = (result, None)

    @staticmethod
    def _settle(batch: list[_Job]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[_Job]] = {}
        for job in batch:
            if job.future is not None:
                result, exc = job.outcome
                if exc is None:
                    job.future.set_result(result)
                else:
                    job.future.set_exception(exc)
            elif job.loop is not None:
                by_loop.setdefault(job.loop, []).append(job)
        for loop, jobs in by_loop.items():
            try:
                loop.call_soon_threadsafe(_wake, jobs)
            except RuntimeError:  # the loop closed while we wrote; nobody is waiting
                log.debug("event loop closed before %d write(s) could be acknowledged", len(jobs))


def _wake(jobs: list[_Job]) -> None:
    for job in jobs:
        waiter = job.waiter
        if waiter is None or waiter.done():  # cancelled: the caller stopped waiting
            continue
        result, exc = job.outcome
        if exc is None:
            waiter.set_result(result)
        else:
            waiter.set_exception(exc)
