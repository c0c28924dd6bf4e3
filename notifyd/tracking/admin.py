"""Every operation on runs, with its SQL: the one place that reads and moves them.

As procrastinate's ``JobManager`` and River's driver interface do, this module holds the whole
vocabulary of the queue, used alike by the dispatcher, the HTTP routes, the CLI, metrics and
retention:

- the worker's: ``claim_due``, ``finish_attempts``, ``renew_leases``, ``interrupt_runs``
- an operator's: ``retry_run`` (a failed or cancelled run afresh; a retrying run now),
  ``retry_runs`` (in bulk), ``cancel_run``, ``prune_chunk`` / ``prune``
- reading: ``get_run``, ``list_runs``, ``count_runs``, ``runs_for_ref``, ``stats``,
  ``queue_figures``, ``has_runs``

Writes take a ``Connection`` inside a write transaction (the server passes its group-commit
writer's, the CLI its own) and run only their own statements. Every state change is a
conditional UPDATE from the sources its ``Transition`` (``notifyd.tracking.models``) allows, so
an operator and a worker can never race a run into a state the transitions do not list.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Integer,
    Row,
    and_,
    bindparam,
    cast,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)

from notifyd.tracking.errors import InvalidTransition, RunNotFound
from notifyd.tracking.models import (
    ACTIVE,
    CANCEL,
    CLAIM,
    DUE,
    FINISHED,
    RETRY,
    RETRY_NOW,
    Outcome,
    RunStatus,
    attempts,
    runs,
    tally,
)
from notifyd.tracking.notify import notify_runs
from notifyd.tracking.outcomes import AttemptResult
from notifyd.tracking.retry import RetryPolicies

RUNS = runs
ATTEMPTS = attempts
TALLY = tally
# A run whose worker died this many times mid-attempt is failed: a task that takes its process
# down with it would otherwise loop forever. (Graceful shutdowns do not count.)
MAX_CRASHES = 5
MAX_PAGE = 500
PRUNE_CHUNK = 2000


# ---- records --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClaimedRun:
    """A run this worker now holds, with the number of the attempt it is about to make."""

    id: str
    task_name: str
    args: dict[str, Any]
    queue: str | None
    attempt: int
    max_attempts: int
    interruptions: int
    started_at: datetime
    label: str | None = None


@dataclass(frozen=True)
class RunRecord:
    """A run as stored (every column but the lease bookkeeping)."""

    id: str
    task_name: str
    queue: str | None
    label: str | None
    ref: str | None
    args: dict[str, Any]
    status: RunStatus
    attempts: int
    max_attempts: int
    created_at: datetime
    updated_at: datetime
    next_attempt_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    last_error: str | None

    @property
    def duration_ms(self) -> float | None:
        """From the first attempt's start to the end, for a finished run."""
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds() * 1000


@dataclass(frozen=True)
class AttemptRecord:
    """One attempt of a run."""

    number: int
    worker: str | None
    started_at: datetime
    finished_at: datetime | None
    duration_ms: float | None
    outcome: Outcome
    error_type: str | None
    error_message: str | None
    traceback: str | None
    retry_delay_seconds: float | None
    response: dict[str, Any] | None


@dataclass(frozen=True)
class RunDetail:
    """A run and every attempt, oldest first."""

    run: RunRecord
    attempts: list[AttemptRecord]


@dataclass(frozen=True)
class RunPage:
    """Runs newest first; ``next_cursor`` continues after the last one."""

    items: list[RunRecord]
    next_cursor: str | None


@dataclass(frozen=True)
class RunStats:
    """Counts by status, and by queue then status; since when the longest-waiting queued run
    has been due."""

    by_status: dict[str, int]
    by_queue: dict[str, dict[str, int]]
    oldest_queued_at: datetime | None


@dataclass(frozen=True)
class QueueFigures:
    """What a scrape shows of the whole store: runs not finished, and the oldest due one."""

    active: dict[str, int]
    oldest_due_at: datetime | None


@dataclass(frozen=True)
class RunFilter:
    """Which runs a list, a count or a bulk operation looks at (every field optional)."""

    statuses: tuple[RunStatus, ...] = ()
    queue: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    ref: str | None = None

    def condition(self) -> list[ColumnElement[bool]]:
        """The WHERE clauses."""
        clauses: list[ColumnElement[bool]] = []
        if self.statuses:
            clauses.append(RUNS.c.status.in_([s.value for s in self.statuses]))
        if self.queue is not None:
            clauses.append(RUNS.c.queue == self.queue)
        if self.since is not None:
            clauses.append(RUNS.c.created_at >= self.since)
        if self.until is not None:
            clauses.append(RUNS.c.created_at < self.until)
        if self.ref is not None:
            clauses.append(RUNS.c.ref == self.ref)
        return clauses


_RECORD_COLUMNS = [RUNS.c[name] for name in RunRecord.__dataclass_fields__]
_ATTEMPT_COLUMNS = [ATTEMPTS.c[name] for name in AttemptRecord.__dataclass_fields__]


def _record(row: Row[Any]) -> RunRecord:
    values = row._asdict()
    values["status"] = RunStatus(values["status"])
    return RunRecord(**values)


def _attempt(row: Row[Any]) -> AttemptRecord:
    values = row._asdict()
    values["outcome"] = Outcome(values["outcome"])
    return AttemptRecord(**values)


# ---- the worker's operations ----------------------------------------------------------------


def claim_due(
    conn: Connection,
    *,
    now: datetime,
    limit: int,
    worker: str,
    lease_until: datetime,
    queue_free: Mapping[str, int] | None = None,
) -> list[ClaimedRun]:
    """Atomically take up to ``limit`` due runs: mark them running, leased, with a new attempt.

    ``queue_free`` caps how many runs of a queue may be taken (queues at 0 are skipped).
    On PostgreSQL rows another worker is claiming are skipped (FOR UPDATE SKIP LOCKED); SQLite's
    single writer makes the select-then-update atomic by itself.
    """
    if limit <= 0:
        return []
    caps = dict(queue_free or {})
    full = [name for name, free in caps.items() if free <= 0]
    query = (
        select(
            RUNS.c.id,
            RUNS.c.task_name,
            RUNS.c.args,
            RUNS.c.queue,
            RUNS.c.label,
            RUNS.c.attempts,
            RUNS.c.max_attempts,
            RUNS.c.interruptions,
        )
        .where(RUNS.c.status.in_(CLAIM.source_values), RUNS.c.next_attempt_at <= now)
        .order_by(RUNS.c.next_attempt_at, RUNS.c.id)
        .limit(limit * 2 if caps else limit)
        .with_for_update(skip_locked=True)
    )
    if full:
        query = query.where(or_(RUNS.c.queue.is_(None), RUNS.c.queue.not_in(full)))
    picked: list[Any] = []
    for row in conn.execute(query):
        if len(picked) == limit:
            break
        if row.queue in caps:
            if caps[row.queue] <= 0:
                continue
            caps[row.queue] -= 1
        picked.append(row)
    if not picked:
        return []
    conn.execute(
        update(RUNS)
        .where(RUNS.c.id == bindparam("b_id"))
        .values(
            status=RunStatus.running.value,
            attempts=bindparam("b_attempt"),
            worker=worker,
            lease_expires_at=lease_until,
            started_at=func.coalesce(RUNS.c.started_at, now),
            updated_at=now,
        ),
        [{"b_id": row.id, "b_attempt": row.attempts + 1} for row in picked],
    )
    conn.execute(
        insert(ATTEMPTS),
        [
            {
                "run_id": row.id,
                "number": row.attempts + 1,
                "worker": worker,
                "started_at": now,
                "outcome": Outcome.running.value,
            }
            for row in picked
        ],
    )
    return [
        ClaimedRun(
            id=row.id,
            task_name=row.task_name,
            args=row.args,
            queue=row.queue,
            attempt=row.attempts + 1,
            max_attempts=row.max_attempts,
            interruptions=row.interruptions,
            started_at=now,
            label=row.label,
        )
        for row in picked
    ]


_FINAL = (RunStatus.succeeded, RunStatus.failed)
# One statement for every finished run of a batch (executemany): building a statement per run
# cost more than the rest of the dispatcher's work per run.
_FINISH_ATTEMPT = (
    update(ATTEMPTS)
    .where(
        ATTEMPTS.c.run_id == bindparam("b_run"),
        ATTEMPTS.c.number == bindparam("b_number"),
        ATTEMPTS.c.outcome == Outcome.running.value,
    )
    .values(
        finished_at=bindparam("b_finished"),
        duration_ms=bindparam("b_duration"),
        outcome=bindparam("b_outcome"),
        error_type=bindparam("b_error_type"),
        error_message=bindparam("b_error_message"),
        traceback=bindparam("b_traceback"),
        retry_delay_seconds=bindparam("b_delay"),
        response=bindparam("b_response"),
    )
)
_FINISH_RUN = (
    update(RUNS)
    .where(
        RUNS.c.id == bindparam("b_id"),
        RUNS.c.status == RunStatus.running.value,
        RUNS.c.worker == bindparam("b_worker"),
        RUNS.c.attempts == bindparam("b_attempt"),
    )
    .values(
        status=bindparam("b_status"),
        next_attempt_at=bindparam("b_next"),
        lease_expires_at=None,
        worker=None,
        finished_at=bindparam("b_finished"),
        last_error=bindparam("b_error"),
        updated_at=bindparam("b_updated"),
    )
)


def finish_attempts(conn: Connection, results: Sequence[AttemptResult], *, worker: str) -> int:
    """Record finished attempts and move their runs on; returns how many runs this worker still held.

    A run whose lease was lost (rescued by another worker meanwhile) keeps its new state: only
    the attempt row is completed.
    """
    if not results:
        return 0
    conn.execute(
        _FINISH_ATTEMPT,
        [
            {
                "b_run": r.run_id,
                "b_number": r.attempt,
                "b_finished": r.finished_at,
                "b_duration": r.duration_ms,
                "b_outcome": r.outcome.value,
                "b_error_type": r.error_type,
                "b_error_message": r.error_message,
                "b_traceback": r.traceback,
                "b_delay": r.retry_delay_seconds,
                "b_response": r.response,
            }
            for r in results
        ],
    )
    outcome = conn.execute(
        _FINISH_RUN,
        [
            {
                "b_id": r.run_id,
                "b_worker": worker,
                "b_attempt": r.attempt,
                "b_status": r.status.value,
                "b_next": r.next_attempt_at,
                "b_finished": r.finished_at if r.status in _FINAL else None,
                "b_error": None if r.status is RunStatus.succeeded else r.short_error,
                "b_updated": r.finished_at,
            }
            for r in results
        ],
    )
    return outcome.rowcount


def renew_leases(conn: Connection, run_ids: Iterable[str], *, worker: str, until: datetime) -> int:
    """Extend this worker's leases on the runs it is executing."""
    ids = list(run_ids)
    if not ids:
        return 0
    result = conn.execute(
        update(RUNS)
        .where(
            RUNS.c.id.in_(ids),
            RUNS.c.worker == worker,
            RUNS.c.status == RunStatus.running.value,
        )
        .values(lease_expires_at=until)
    )
    return result.rowcount


def interrupt_runs(
    conn: Connection,
    *,
    now: datetime,
    reason: str,
    error_type: str,
    expired_before: datetime | None = None,
    run_ids: Sequence[str] | None = None,
    worker: str | None = None,
) -> list[str]:
    """Record the open attempts of running runs as interrupted and make the runs due again now.

    Selects either the runs whose lease expired before ``expired_before`` (the sweep: their
    worker crashed) or the given ``run_ids`` held by ``worker`` (a shutdown releasing what it
    could not finish). Interruptions are not charged to the retry budget; only crashes count
    towards giving up on a run that keeps taking its worker down.
    """
    crashed = expired_before is not None
    condition = [RUNS.c.status == RunStatus.running.value]
    if expired_before is not None:
        condition.append(RUNS.c.lease_expires_at < expired_before)
    if run_ids is not None:
        if not run_ids:
            return []
        condition += [RUNS.c.id.in_(list(run_ids)), RUNS.c.worker == worker]
    rows = conn.execute(
        select(RUNS.c.id, RUNS.c.attempts, RUNS.c.interruptions, RUNS.c.crashes)
        .where(and_(*condition))
        .with_for_update(skip_locked=True)
    ).all()
    for row in rows:
        conn.execute(
            update(ATTEMPTS)
            .where(
                ATTEMPTS.c.run_id == row.id,
                ATTEMPTS.c.number == row.attempts,
                ATTEMPTS.c.outcome == Outcome.running.value,
            )
            .values(
                outcome=Outcome.interrupted.value,
                finished_at=now,
                error_type=error_type,
                error_message=reason,
            )
        )
        crashes = row.crashes + 1 if crashed else row.crashes
        gave_up = crashes >= MAX_CRASHES
        conn.execute(
            update(RUNS)
            .where(RUNS.c.id == row.id)
            .values(
                status=(RunStatus.failed if gave_up else RunStatus.retrying).value,
                interruptions=row.interruptions + 1,
                crashes=crashes,
                next_attempt_at=None if gave_up else now,
                lease_expires_at=None,
                worker=None,
                finished_at=now if gave_up else None,
                last_error=f"{error_type}: {reason}"
                + (f" (its worker died {crashes} times; giving up)" if gave_up else ""),
                updated_at=now,
            )
        )
    return [row.id for row in rows]


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


@dataclass(frozen=True)
class PruneResult:
    """What a prune removed: runs (with their attempts), and what the caller's hook removed."""

    runs: int = 0
    extra: dict[str, int] = field(default_factory=dict)

    def __add__(self, other: PruneResult) -> PruneResult:
        extra = dict(self.extra)
        for name, count in other.extra.items():
            extra[name] = extra.get(name, 0) + count
        return PruneResult(self.runs + other.runs, extra)

    @property
    def total(self) -> int:
        """Rows removed in all."""
        return self.runs + sum(self.extra.values())


def prune_chunk(
    conn: Connection, *, older_than: timedelta, now: datetime, limit: int = PRUNE_CHUNK
) -> int:
    """Delete up to ``limit`` finished runs that ended before ``now - older_than``.

    Their attempts go with them; unfinished runs are never touched. Small chunks, each in its
    own transaction (see ``prune``), keep the store's write lock free for new runs in between.
    """
    try:
        cutoff = now - older_than
    except OverflowError:  # older than the calendar: nothing is
        return 0
    # The DELETE checks its condition again: on PostgreSQL an operator's retry may have queued
    # one of these runs since the select. Attempts go with their run (ON DELETE CASCADE).
    old_and_finished = (RUNS.c.status.in_([s.value for s in FINISHED]), RUNS.c.finished_at < cutoff)
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


def has_runs(ref: ColumnElement[Any]) -> ColumnElement[bool]:
    """A clause true where some run refers to ``ref`` (a caller's column): to find orphans."""
    return exists().where(RUNS.c.ref == ref)


def compact_tally(conn: Connection) -> int:
    """Fold the tally's +1/-1 rows into one row per (queue, status); returns the rows folded.

    The dispatcher calls it with each sweep, so counting never sums more than a few seconds'
    worth of changes. On PostgreSQL one statement deletes what it sums (rows other
    transactions have not committed yet stay for the next fold); SQLite's write lock makes
    the read-then-delete atomic.
    """
    if conn.dialect.name == "postgresql":
        gone = conn.exec_driver_sql(
            "WITH gone AS (DELETE FROM task_run_tally RETURNING queue, status, delta), "
            "folded AS (INSERT INTO task_run_tally (queue, status, delta) "
            "SELECT queue, status, sum(delta) FROM gone GROUP BY queue, status "
            "HAVING sum(delta) <> 0) SELECT count(*) FROM gone"
        ).scalar_one()
        return int(gone)
    rows = conn.execute(select(func.count()).select_from(TALLY)).scalar_one()
    folded = _tallied(conn)
    if rows <= len(folded):
        return 0
    conn.execute(delete(TALLY))
    if folded:
        conn.execute(
            insert(TALLY),
            [{"queue": queue, "status": status, "delta": count} for queue, status, count in folded],
        )
    return int(rows)


# ---- reading --------------------------------------------------------------------------------


def get_run(conn: Connection, run_id: str) -> RunDetail:
    """One run and every attempt."""
    row = conn.execute(select(*_RECORD_COLUMNS).where(RUNS.c.id == run_id)).one_or_none()
    if row is None:
        raise RunNotFound(f"no task run with id {run_id!r}")
    tries = conn.execute(
        select(*_ATTEMPT_COLUMNS).where(ATTEMPTS.c.run_id == run_id).order_by(ATTEMPTS.c.number)
    ).all()
    return RunDetail(_record(row), [_attempt(a) for a in tries])


def find_run(conn: Connection, run_id: str) -> RunRecord | None:
    """One run without its attempts, or None."""
    row = conn.execute(select(*_RECORD_COLUMNS).where(RUNS.c.id == run_id)).one_or_none()
    return _record(row) if row is not None else None


def list_runs(
    conn: Connection, selection: RunFilter, *, limit: int = 50, cursor: str | None = None
) -> RunPage:
    """Runs newest first (ids sort by creation); ``cursor`` continues after a page's last id."""
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be between 1 and {MAX_PAGE}")
    query = select(*_RECORD_COLUMNS).where(*selection.condition())
    if cursor:
        query = query.where(RUNS.c.id < cursor)
    rows = conn.execute(query.order_by(RUNS.c.id.desc()).limit(limit + 1)).all()
    page = [_record(row) for row in rows[:limit]]
    return RunPage(page, page[-1].id if len(rows) > limit else None)


def runs_for_ref(conn: Connection, ref: str) -> list[RunRecord]:
    """Every run referring to ``ref``, oldest first."""
    rows = conn.execute(select(*_RECORD_COLUMNS).where(RUNS.c.ref == ref).order_by(RUNS.c.id)).all()
    return [_record(row) for row in rows]


def count_runs(conn: Connection, selection: RunFilter) -> int:
    """How many runs the filter selects."""
    return int(
        conn.execute(
            select(func.count()).select_from(RUNS).where(*selection.condition())
        ).scalar_one()
    )


def _tallied(conn: Connection) -> list[tuple[str | None, str, int]]:
    rows = conn.execute(
        select(TALLY.c.queue, TALLY.c.status, func.sum(TALLY.c.delta))
        .group_by(TALLY.c.queue, TALLY.c.status)
        .having(func.sum(TALLY.c.delta) != 0)
    ).all()
    return [(queue, status, int(count)) for queue, status, count in rows]


def stats(conn: Connection, *, now: datetime | None = None) -> RunStats:
    """Counts by status and by queue (exact, from the tally: as fast on a million runs as on a
    thousand); when the longest-waiting queued run became due (a run scheduled for later is not
    waiting yet), by ``now`` if given."""
    by_status = {s.value: 0 for s in RunStatus}
    by_queue: dict[str, dict[str, int]] = {}
    for queue, status, count in _tallied(conn):
        by_status[status] = by_status.get(status, 0) + count
        by_queue.setdefault(queue or "-", {})[status] = count
    # A queued run is due from next_attempt_at (its creation, or the time it was scheduled for):
    # the smallest one already passed is an index seek on the due index.
    due = [RUNS.c.status == RunStatus.queued.value]
    if now is not None:
        due.append(RUNS.c.next_attempt_at <= now)
    oldest: datetime | None = conn.execute(
        select(func.min(RUNS.c.next_attempt_at)).where(*due)
    ).scalar_one_or_none()
    return RunStats(by_status, by_queue, oldest)


def queue_figures(conn: Connection, *, now: datetime) -> QueueFigures:
    """Runs not finished by status, and the oldest due run's due time (tally and an index)."""
    active: dict[str, int] = {}
    for _queue, status, count in _tallied(conn):
        active[status] = active.get(status, 0) + count
    oldest = conn.execute(
        select(func.min(RUNS.c.next_attempt_at)).where(
            RUNS.c.status.in_([s.value for s in DUE]), RUNS.c.next_attempt_at <= now
        )
    ).scalar_one_or_none()
    return QueueFigures({s.value: active.get(s.value, 0) for s in ACTIVE}, oldest)


# ---- the dashboard's reads ------------------------------------------------------------------


@dataclass(frozen=True)
class Histogram:
    """Attempts started since ``since``, counted by outcome in buckets of ``bucket_seconds``.

    ``counts[outcome][i]`` is the number of attempts with that outcome that started in bucket
    ``i`` (``since + i * bucket_seconds`` onwards); every outcome has ``buckets`` entries.
    """

    since: datetime
    bucket_seconds: int
    buckets: int
    counts: dict[str, list[int]]


def attempt_histogram(
    conn: Connection, *, since: datetime, until: datetime, bucket_seconds: int
) -> Histogram:
    """Attempts by outcome per time bucket, from ``since`` to ``until`` (one grouped query)."""
    if bucket_seconds <= 0 or until <= since:
        raise ValueError("need a positive bucket and until after since")
    buckets = math.ceil((until - since).total_seconds() / bucket_seconds)
    started = ATTEMPTS.c.started_at
    if conn.dialect.name == "sqlite":
        # Stored as naive UTC text that julianday() reads. Its float difference is off by
        # microseconds: rounded to whole milliseconds, then integer division (offsets are >= 0).
        millis = cast(
            func.round((func.julianday(started) - func.julianday(_naive(since))) * 86_400_000.0),
            Integer,
        )
        index: ColumnElement[Any] = millis // (bucket_seconds * 1000)
    else:
        offset = func.extract("epoch", started - _naive(since))
        index = cast(func.floor(offset / bucket_seconds), Integer)
    rows = conn.execute(
        select(index.label("bucket"), ATTEMPTS.c.outcome, func.count())
        .where(started >= since, started < until)
        .group_by("bucket", ATTEMPTS.c.outcome)
    ).all()
    counts = {outcome.value: [0] * buckets for outcome in Outcome}
    for bucket, outcome, count in rows:
        if outcome in counts and 0 <= int(bucket) < buckets:
            counts[outcome][int(bucket)] += int(count)
    return Histogram(since, bucket_seconds, buckets, counts)


def _naive(moment: datetime) -> datetime:
    # The columns hold naive UTC; a literal compared with them in SQL must be naive UTC too.
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def count_due(conn: Connection, *, now: datetime) -> int:
    """How many runs are waiting for a worker and due now (on the due index)."""
    return int(
        conn.execute(
            select(func.count())
            .select_from(RUNS)
            .where(RUNS.c.status.in_([s.value for s in DUE]), RUNS.c.next_attempt_at <= now)
        ).scalar_one()
    )


def search_runs(
    conn: Connection,
    selection: RunFilter,
    *,
    text: str,
    limit: int = 50,
    cursor: str | None = None,
) -> RunPage:
    """Like ``list_runs``, among the runs whose id or ref is ``text`` or whose label holds it."""
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be between 1 and {MAX_PAGE}")
    pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    query = select(*_RECORD_COLUMNS).where(
        *selection.condition(),
        or_(RUNS.c.id == text, RUNS.c.ref == text, RUNS.c.label.like(pattern, escape="\\")),
    )
    if cursor:
        query = query.where(RUNS.c.id < cursor)
    rows = conn.execute(query.order_by(RUNS.c.id.desc()).limit(limit + 1)).all()
    page = [_record(row) for row in rows[:limit]]
    return RunPage(page, page[-1].id if len(rows) > limit else None)


def cancel_runs(conn: Connection, *, selection: RunFilter, now: datetime) -> int:
    """Cancel every queued or retrying run the filter selects (each as ``cancel_run`` would);
    returns how many."""
    return conn.execute(
        update(RUNS)
        .where(*selection.condition(), RUNS.c.status.in_(CANCEL.source_values))
        .values(**_cancelled(now))
    ).rowcount
