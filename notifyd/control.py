"""Operator control of runs: retry, cancel, prune, stats. Shared by the CLI and the API.

Each function works on a Connection inside a write transaction: the server runs them through its
group-commit writer, the CLI through ``write_connection`` straight on the store. Every state
change is a conditional UPDATE, so it cannot race the dispatcher into a wrong state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Connection, delete, exists, func, select, update

from notifyd.errors import InvalidState, NotFound
from notifyd.models import FINISHED_STATUSES, IdempotencyRecord, Notification, RunStatus, TaskStats
from notifyd.tracking.notify import notify_runs
from notifyd.tracking.queries import RUNS

NOTIFICATIONS = Notification.__table__  # type: ignore[attr-defined]
IDEMPOTENCY = IdempotencyRecord.__table__  # type: ignore[attr-defined]
RETRYABLE = (RunStatus.failed, RunStatus.cancelled)
CANCELLABLE = (RunStatus.queued, RunStatus.retrying)
PRUNE_CHUNK = 2000

MaxAttemptsFor = Callable[[str | None], int]


def _status_of(conn: Connection, run_id: str) -> str:
    status = conn.execute(select(RUNS.c.status).where(RUNS.c.id == run_id)).scalar_one_or_none()
    if status is None:
        raise NotFound(f"no task run with id {run_id!r}")
    return str(status)


def _names(statuses: tuple[RunStatus, ...]) -> str:
    return " or ".join(s.value for s in statuses)


def _wake_dispatchers(conn: Connection) -> None:
    # The CLI writes straight to the store: on PostgreSQL, tell the servers so they look now.
    if conn.dialect.name == "postgresql":
        notify_runs(conn)


def _retry_values(now: datetime, attempts: int, budget: int) -> dict[str, object]:
    # A retried run starts afresh: a full retry budget on top of the attempts it already made
    # (all of them now count as spent), and no crashes held against it.
    return {
        "max_attempts": attempts + budget,
        "interruptions": 0,
        "crashes": 0,
        "status": RunStatus.queued.value,
        "next_attempt_at": now,
        "finished_at": None,
        "lease_expires_at": None,
        "worker": None,
        "updated_at": now,
    }


def retry_run(
    conn: Connection, *, run_id: str, now: datetime, max_attempts_for: MaxAttemptsFor
) -> str:
    """Queue a failed or cancelled run again, now, with a fresh retry budget."""
    row = conn.execute(
        select(RUNS.c.channel, RUNS.c.attempts).where(RUNS.c.id == run_id)
    ).one_or_none()
    if row is None:
        raise NotFound(f"no task run with id {run_id!r}")
    result = conn.execute(
        update(RUNS)
        .where(RUNS.c.id == run_id, RUNS.c.status.in_([s.value for s in RETRYABLE]))
        .values(**_retry_values(now, row.attempts, max_attempts_for(row.channel)))
    )
    if result.rowcount == 0:
        status = _status_of(conn, run_id)
        raise InvalidState(
            f"run {run_id} is {status}; only {_names(RETRYABLE)} runs can be retried"
        )
    _wake_dispatchers(conn)
    return run_id


def cancel_run(conn: Connection, *, run_id: str, now: datetime) -> str:
    """Cancel a queued or retrying run: it will not be attempted again."""
    result = conn.execute(
        update(RUNS)
        .where(RUNS.c.id == run_id, RUNS.c.status.in_([s.value for s in CANCELLABLE]))
        .values(
            status=RunStatus.cancelled.value,
            next_attempt_at=None,
            finished_at=now,
            last_error="cancelled by an operator",
            updated_at=now,
        )
    )
    if result.rowcount == 0:
        status = _status_of(conn, run_id)
        raise InvalidState(
            f"run {run_id} is {status}; only {_names(CANCELLABLE)} runs can be cancelled"
        )
    return run_id


@dataclass(frozen=True)
class RunFilter:
    """Which runs a bulk operation touches."""

    status: RunStatus = RunStatus.failed
    channel: str | None = None
    since: datetime | None = None

    def condition(self) -> list[ColumnElement[bool]]:
        """The WHERE clauses."""
        clauses: list[ColumnElement[bool]] = [RUNS.c.status == self.status.value]
        if self.channel is not None:
            clauses.append(RUNS.c.channel == self.channel)
        if self.since is not None:
            clauses.append(RUNS.c.created_at >= self.since)
        return clauses


def count_runs(conn: Connection, selection: RunFilter) -> int:
    """How many runs a bulk operation would touch."""
    return int(
        conn.execute(
            select(func.count()).select_from(RUNS).where(*selection.condition())
        ).scalar_one()
    )


def retry_runs(
    conn: Connection, *, selection: RunFilter, now: datetime, max_attempts_for: MaxAttemptsFor
) -> int:
    """Queue every matching failed or cancelled run again; returns how many."""
    if selection.status not in RETRYABLE:
        raise InvalidState(
            f"only {_names(RETRYABLE)} runs can be retried, not {selection.status.value}"
        )
    rows = conn.execute(
        select(RUNS.c.id, RUNS.c.channel, RUNS.c.attempts).where(*selection.condition())
    ).all()
    for row in rows:
        conn.execute(
            update(RUNS)
            .where(RUNS.c.id == row.id, RUNS.c.status == selection.status.value)
            .values(**_retry_values(now, row.attempts, max_attempts_for(row.channel)))
        )
    if rows:
        _wake_dispatchers(conn)
    return len(rows)


@dataclass(frozen=True)
class PruneResult:
    """What a prune removed."""

    runs: int = 0
    notifications: int = 0
    idempotency_records: int = 0

    def __add__(self, other: PruneResult) -> PruneResult:
        return PruneResult(
            self.runs + other.runs,
            self.notifications + other.notifications,
            self.idempotency_records + other.idempotency_records,
        )

    @property
    def total(self) -> int:
        """Rows removed in all."""
        return self.runs + self.notifications + self.idempotency_records


def prune_chunk(
    conn: Connection, *, older_than: timedelta, now: datetime, limit: int = PRUNE_CHUNK
) -> PruneResult:
    """Delete up to ``limit`` each of: finished runs older than ``older_than`` (with their
    attempts), notifications left without runs, expired idempotency records.

    Unfinished runs are never touched. Call until it removes nothing (see ``prune``): small
    transactions keep the store's write lock free for the accept path between chunks.
    """
    try:
        cutoff = now - older_than
    except OverflowError:  # older than the calendar: nothing is
        return PruneResult()
    finished = [s.value for s in FINISHED_STATUSES]
    # Each DELETE checks its condition again: on PostgreSQL an operator's retry may have
    # queued one of these runs since the select. Attempts go with their run (ON DELETE CASCADE).
    old_and_finished = (RUNS.c.status.in_(finished), RUNS.c.finished_at < cutoff)
    run_ids = conn.execute(select(RUNS.c.id).where(*old_and_finished).limit(limit)).scalars().all()
    runs = (
        conn.execute(delete(RUNS).where(RUNS.c.id.in_(run_ids), *old_and_finished)).rowcount
        if run_ids
        else 0
    )
    orphaned = (
        NOTIFICATIONS.c.created_at < cutoff,
        ~exists().where(RUNS.c.notification_id == NOTIFICATIONS.c.id),
    )
    note_ids = (
        conn.execute(select(NOTIFICATIONS.c.id).where(*orphaned).limit(limit)).scalars().all()
    )
    notifications = (
        conn.execute(
            delete(NOTIFICATIONS).where(NOTIFICATIONS.c.id.in_(note_ids), *orphaned)
        ).rowcount
        if note_ids
        else 0
    )
    keys = conn.execute(
        select(IDEMPOTENCY.c.caller, IDEMPOTENCY.c.key)
        .where(IDEMPOTENCY.c.expires_at < now)
        .limit(limit)
    ).all()
    for caller, key in keys:
        conn.execute(
            delete(IDEMPOTENCY).where(IDEMPOTENCY.c.caller == caller, IDEMPOTENCY.c.key == key)
        )
    return PruneResult(runs, notifications, len(keys))


def prune(
    run_chunk: Callable[[], PruneResult],
) -> PruneResult:
    """Run ``run_chunk`` (one ``prune_chunk`` in its own transaction) until nothing is left."""
    total = PruneResult()
    while True:
        removed = run_chunk()
        total += removed
        if removed.total == 0:
            return total


def stats(conn: Connection, *, now: datetime) -> TaskStats:
    """Count runs by status and channel; find the oldest queued run."""
    by_status = {s.value: 0 for s in RunStatus}
    by_channel: dict[str, dict[str, int]] = {}
    rows = conn.execute(
        select(RUNS.c.channel, RUNS.c.status, func.count()).group_by(RUNS.c.channel, RUNS.c.status)
    ).all()
    for channel, status, count in rows:
        by_status[status] = by_status.get(status, 0) + count
        per = by_channel.setdefault(channel or "-", {})
        per[status] = count
    oldest_at: datetime | None = conn.execute(
        select(func.min(RUNS.c.created_at)).where(RUNS.c.status == RunStatus.queued.value)
    ).scalar_one_or_none()
    age = (now - oldest_at).total_seconds() if oldest_at else None
    return TaskStats(
        by_status=by_status,
        by_channel=by_channel,
        oldest_queued_at=oldest_at,
        oldest_queued_age_seconds=age,
    )
