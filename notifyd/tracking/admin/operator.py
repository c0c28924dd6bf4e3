"""An operator's operations: retry (afresh, or now), cancel, prune; one run or many."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    String,
    cast,
    delete,
    func,
    select,
    update,
)

from notifyd.tracking.admin.records import (
    PRUNE_CHUNK,
    RUNS,
    PruneResult,
    RunFilter,
)
from notifyd.tracking.errors import InvalidTransition, RunNotFound
from notifyd.tracking.models import (
    CANCEL,
    FINISHED,
    RETRY,
    RETRY_NOW,
    RunStatus,
)
from notifyd.tracking.notify import notify_runs
from notifyd.tracking.retry import RetryPolicies

# ---- an operator's operations ---------------------------------------------------------------


def _status_of(conn: Connection, run_id: str) -> str:
    status = conn.execute(select(RUNS.c.status).where(RUNS.c.id == run_id)).scalar_one_or_none()
    if status is None:
        raise RunNotFound(f"no task run with id {run_id!r}")
    return str(status)


def _wake_dispatchers(conn: Connection) -> None:
    # The CLI writes straight to the store: on PostgreSQL, tell the servers so they look now.
    if conn.dialect.name == "postgresql":
        notify_runs(conn)


def _afresh(now: datetime, attempts_made: int, budget: int) -> dict[str, object]:
    # A retried run starts afresh: a full retry budget on top of the attempts it already made
    # (all of them now count as spent), and no crashes held against it.
    return {
        "max_attempts": attempts_made + budget,
        "interruptions": 0,
        "crashes": 0,
        "status": RunStatus.queued.value,
        "next_attempt_at": now,
        "finished_at": None,
        "lease_expires_at": None,
        "worker": None,
        "updated_at": now,
    }


def retry_run(conn: Connection, *, run_id: str, now: datetime, policies: RetryPolicies) -> str:
    """Run a run again now: a failed or cancelled one with a fresh retry budget (``RETRY``),
    a retrying one at once instead of at its scheduled time, with its budget as it is
    (``RETRY_NOW``: waiting is not charged as an attempt)."""
    row = conn.execute(
        select(RUNS.c.queue, RUNS.c.attempts, RUNS.c.status).where(RUNS.c.id == run_id)
    ).one_or_none()
    if row is None:
        raise RunNotFound(f"no task run with id {run_id!r}")
    if row.status in RETRY_NOW.source_values:
        moved = conn.execute(
            update(RUNS)
            .where(RUNS.c.id == run_id, RUNS.c.status.in_(RETRY_NOW.source_values))
            .values(status=RunStatus.queued.value, next_attempt_at=now, updated_at=now)
        ).rowcount
    else:
        moved = conn.execute(
            update(RUNS)
            .where(RUNS.c.id == run_id, RUNS.c.status.in_(RETRY.source_values))
            .values(**_afresh(now, row.attempts, policies.budget(row.queue)))
        ).rowcount
    if moved == 0:
        status = _status_of(conn, run_id)
        allowed = f"{RETRY.describe_sources()} or {RETRY_NOW.describe_sources()}"
        raise InvalidTransition(f"run {run_id} is {status}; only {allowed} runs can be retried")
    _wake_dispatchers(conn)
    return run_id


def _cancelled(now: datetime) -> dict[str, object]:
    return {
        "status": RunStatus.cancelled.value,
        "next_attempt_at": None,
        "finished_at": now,
        "last_error": "cancelled by an operator",
        "updated_at": now,
    }


def cancel_run(conn: Connection, *, run_id: str, now: datetime) -> str:
    """Cancel a queued or retrying run: it will not be attempted again."""
    result = conn.execute(
        update(RUNS)
        .where(RUNS.c.id == run_id, RUNS.c.status.in_(CANCEL.source_values))
        .values(**_cancelled(now))
    )
    if result.rowcount == 0:
        status = _status_of(conn, run_id)
        raise InvalidTransition(
            f"run {run_id} is {status}; only {CANCEL.describe_sources()} runs can be cancelled"
        )
    return run_id


RETRYABLE = RETRY.sources + RETRY_NOW.sources


def retry_runs(
    conn: Connection, *, selection: RunFilter, now: datetime, policies: RetryPolicies
) -> int:
    """Retry every run the filter selects (each as ``retry_run`` would); returns how many."""
    if not selection.statuses or any(s not in RETRYABLE for s in selection.statuses):
        names = " or ".join(s.value for s in RETRYABLE)
        raise InvalidTransition(f"only {names} runs can be retried")
    rows = conn.execute(
        select(RUNS.c.id, RUNS.c.queue, RUNS.c.attempts, RUNS.c.status).where(
            *selection.condition()
        )
    ).all()
    done = 0
    for row in rows:
        if row.status in RETRY_NOW.source_values:
            values: dict[str, object] = {
                "status": RunStatus.queued.value,
                "next_attempt_at": now,
                "updated_at": now,
            }
        else:
            values = _afresh(now, row.attempts, policies.budget(row.queue))
        done += conn.execute(
            update(RUNS).where(RUNS.c.id == row.id, RUNS.c.status == row.status).values(**values)
        ).rowcount
    if done:
        _wake_dispatchers(conn)
    return done


def prunable(*, older_than: timedelta, now: datetime) -> list[ColumnElement[bool]] | None:
    """The runs a prune removes: finished before ``now - older_than`` (None: there are none)."""
    try:
        cutoff = now - older_than
    except OverflowError:  # older than the calendar: nothing is
        return None
    return [RUNS.c.status.in_([s.value for s in FINISHED]), RUNS.c.finished_at < cutoff]


def count_prunable(conn: Connection, *, older_than: timedelta, now: datetime) -> int:
    """How many runs a prune would remove now (a read: no lock is taken)."""
    condition = prunable(older_than=older_than, now=now)
    if condition is None:
        return 0
    return int(conn.execute(select(func.count()).select_from(RUNS).where(*condition)).scalar_one())


def prune_chunk(
    conn: Connection, *, older_than: timedelta, now: datetime, limit: int = PRUNE_CHUNK
) -> int:
    """Delete up to ``limit`` finished runs that ended before ``now - older_than``.

    Their attempts go with them; unfinished runs are never touched. Small chunks, each in its
    own transaction (see ``prune``), keep the store's write lock free for new runs in between.
    """
    old_and_finished = prunable(older_than=older_than, now=now)
    if old_and_finished is None:
        return 0
    # The DELETE checks its condition again: on PostgreSQL an operator's retry may have queued
    # one of these runs since the select. Attempts go with their run (ON DELETE CASCADE).
    run_ids = conn.execute(select(RUNS.c.id).where(*old_and_finished).limit(limit)).scalars().all()
    if not run_ids:
        return 0
    return conn.execute(delete(RUNS).where(RUNS.c.id.in_(run_ids), *old_and_finished)).rowcount


def prune(run_chunk: Callable[[], PruneResult]) -> PruneResult:
    """Run ``run_chunk`` (one chunk in its own transaction) until it removes nothing."""
    total = PruneResult()
    while True:
        removed = run_chunk()
        total += removed
        if removed.total == 0:
            return total


def cancel_runs(conn: Connection, *, selection: RunFilter, now: datetime) -> int:
    """Cancel every queued or retrying run the filter selects (each as ``cancel_run`` would);
    returns how many."""
    return conn.execute(
        update(RUNS)
        .where(*selection.condition(), RUNS.c.status.in_(CANCEL.source_values))
        .values(**_cancelled(now))
    ).rowcount


def _holding(conn: Connection, name: str) -> list[tuple[str, str, dict[str, Any]]]:
    # The JSON is searched as text, which both stores can do; the match is then checked.
    holding = cast(RUNS.c.args, String).like(f"%{name}%")
    rows = conn.execute(
        select(RUNS.c.id, RUNS.c.status, RUNS.c.args).where(holding).order_by(RUNS.c.id)
    ).all()
    return [(r.id, r.status, r.args) for r in rows if isinstance(r.args, dict) and name in r.args]


def argument_values(conn: Connection, *, name: str) -> list[tuple[str, RunStatus, Any]]:
    """``(run id, status, value)`` of the argument ``name`` of every run that has one."""
    return [
        (run_id, RunStatus(status), args[name]) for run_id, status, args in _holding(conn, name)
    ]


def rewrite_argument(conn: Connection, *, name: str, rewrite: Callable[[Any], Any]) -> int:
    """Replace the argument ``name`` of every run that has one with ``rewrite(value)`` (a key
    rotation of stored secrets); returns how many runs changed."""
    count = 0
    for run_id, _, args in _holding(conn, name):
        value = rewrite(args[name])
        if value != args[name]:
            conn.execute(update(RUNS).where(RUNS.c.id == run_id).values(args={**args, name: value}))
            count += 1
    return count
