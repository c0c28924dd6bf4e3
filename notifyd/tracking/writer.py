"""Group commit: one thread owns the store's writes; concurrent callers share each transaction.

Each caller still waits for the commit that holds its own write, so "answered" keeps meaning
"durable", but a burst of requests costs one transaction (and one fsync) instead of one each.
It also means SQLite never sees two writers from this process, so none of them can fail with
"database is locked".
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine

from notifyd.db import write_connection

T = TypeVar("T")
WriteFn = Callable[[Connection], T]

log = logging.getLogger(__name__)

_STOP = object()


@dataclass
class _Job:
    fn: WriteFn[Any]
    future: Future[Any]


class Writer:
    """Runs write functions on one thread, many per transaction."""

    def __init__(self, engine: Engine, *, max_batch: int = 256) -> None:
        self._engine = engine
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Job | object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

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

    def submit(self, fn: WriteFn[T]) -> Future[T]:
        """Queue ``fn``; the future resolves after the transaction that ran it commits."""
        self.start()
        future: Future[T] = Future()
        self._queue.put(_Job(fn, future))
        return future

    async def run(self, fn: WriteFn[T]) -> T:
        """Run ``fn`` in the next group commit and wait for that commit."""
        return await asyncio.wrap_future(self.submit(fn))

    def run_sync(self, fn: WriteFn[T]) -> T:
        """Blocking form of :meth:`run`, for threads."""
        return self.submit(fn).result()

    def _loop(self) -> None:
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
            if stop_after:
                return

    def _commit(self, batch: list[_Job]) -> None:
        live = [job for job in batch if job.future.set_running_or_notify_cancel()]
        if not live:
            return
        try:
            with write_connection(self._engine) as conn:
                results = [job.fn(conn) for job in live]
        except Exception as exc:
            if len(live) == 1:
                live[0].future.set_exception(exc)
                return
            # One bad write must not fail its neighbours: run each alone to find it.
            for job in live:
                self._commit_one(job)
            return
        for job, result in zip(live, results, strict=True):
            job.future.set_result(result)

    def _commit_one(self, job: _Job) -> None:
        try:
            with write_connection(self._engine) as conn:
                result = job.fn(conn)
        except Exception as exc:
            job.future.set_exception(exc)
        else:
            job.future.set_result(result)
