"""One group commit's batch: the callers' writes (``Job``), run together in one transaction,
a bad write found by running each alone, and each caller told how its write ended.

``writer.Writer`` decides where a batch commits (its thread, or the event loop inline).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import Connection, Table
from sqlalchemy.exc import OperationalError

from notifyd.tracking.bulk import insert_tables

T = TypeVar("T")
WriteFn = Callable[[Connection], T]
Inserts = Sequence[tuple[Table, Sequence[Mapping[str, Any]]]]
Once = Sequence[WriteFn[Any]]

log = logging.getLogger(__name__)


class Busy(Exception):
    """The store's write lock is held elsewhere, and the inline connection does not wait."""


def is_busy(exc: OperationalError) -> bool:
    return "database is locked" in str(exc.orig) or "database is busy" in str(exc.orig)


@dataclass
class Job:
    """One caller's write: rows to insert and/or a function on the connection; how it ended."""

    fn: WriteFn[Any] | None
    inserts: Inserts
    # Writes the transaction needs once however many of its jobs ask (a NOTIFY, say): run
    # after every job's own, each distinct function once. They read no results (see
    # ``pipelined``).
    once: Once = ()
    # ``fn`` may run in a PostgreSQL pipeline (see ``pipeline``): it reads no statement's
    # result through SQLAlchemy, only through ``pipeline.fetch_rows``. A transaction is
    # pipelined when each of its jobs is, or has no ``fn``.
    pipelined: bool = False
    future: Future[Any] | None = None
    waiter: asyncio.Future[Any] | None = None
    loop: asyncio.AbstractEventLoop | None = None
    outcome: tuple[Any, BaseException | None] = field(default=(None, None))
    checkpoint: bool = False
    # Called on the job's loop with its result once its transaction committed, in the pass
    # that learns of it, before its caller resumes (a pass later).
    committed: Callable[[Any], None] | None = None


def apply(conn: Connection, jobs: list[Job]) -> list[Any]:
    """Run a batch's writes: every job's inserts merged per table (tables in the order they
    first appear, so parents go before children), then each job's function, then each distinct
    ``once`` function of the jobs, once."""
    merged: dict[Table, list[Mapping[str, Any]]] = {}
    once: dict[WriteFn[Any], None] = {}
    for job in jobs:
        for table, rows in job.inserts:
            merged.setdefault(table, []).extend(rows)
        once.update(dict.fromkeys(job.once))
    insert_tables(conn, list(merged.items()))
    results = [job.fn(conn) if job.fn is not None else None for job in jobs]
    for fn in once:
        fn(conn)
    return results


def commit(batch: list[Job], transaction: Callable[[list[Job]], list[Any]]) -> list[Job]:
    """Commit ``batch`` through ``transaction`` (one transaction over the jobs it is given),
    setting each job's outcome; returns the jobs left undone because the inline connection
    found the write lock held (``Busy``: the thread's waits instead)."""
    try:
        results = transaction(batch)
    except Busy:
        return batch
    except Exception as exc:
        if len(batch) == 1:
            batch[0].outcome = (None, exc)
            return []
        # One bad write must not fail its neighbours: run each alone to find it.
        for index, job in enumerate(batch):
            try:
                job.outcome = (transaction([job])[0], None)
            except Busy:
                return batch[index:]
            except Exception as single:
                job.outcome = (None, single)
        return []
    for job, result in zip(batch, results, strict=True):
        job.outcome = (result, None)
    return []


def settle(batch: list[Job]) -> None:
    """From the writer thread: resolve each job's future, or wake its loop's waiters."""
    by_loop: dict[asyncio.AbstractEventLoop, list[Job]] = {}
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
            loop.call_soon_threadsafe(wake, jobs)
        except RuntimeError:  # the loop closed while we wrote; nobody is waiting
            log.debug("event loop closed before %d write(s) could be acknowledged", len(jobs))


def wake(jobs: list[Job]) -> None:
    """On the jobs' own loop: hand each waiting caller its outcome, then run each committed
    job's hook (so that what a hook starts, deliveries, runs after the callers' answers)."""
    for job in jobs:
        waiter = job.waiter
        if waiter is None or waiter.done():  # cancelled: the caller stopped waiting
            continue
        result, exc = job.outcome
        if exc is None:
            waiter.set_result(result)
        else:
            waiter.set_exception(exc)
    for job in jobs:
        result, exc = job.outcome
        if exc is None and job.committed is not None:
            try:
                job.committed(result)
            except Exception:  # the commit stands; its caller hears of it
                log.exception("a write's commit hook failed")
