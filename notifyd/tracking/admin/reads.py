"""Reading runs: one, a page, a search, counts, the tally's summary, the dashboard's histogram."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Integer,
    cast,
    exists,
    func,
    or_,
    select,
)

from notifyd.tracking.admin.records import (
    ATTEMPT_COLUMNS,
    ATTEMPTS,
    MAX_PAGE,
    RECORD_COLUMNS,
    RUNS,
    TALLY,
    AttemptRecord,
    Histogram,
    QueueFigures,
    RunDetail,
    RunFilter,
    RunPage,
    RunRecord,
    RunStats,
    to_attempt,
    to_record,
)
from notifyd.tracking.errors import RunNotFound
from notifyd.tracking.models import (
    ACTIVE,
    Outcome,
    RunStatus,
    in_due_state,
)

# ---- reading --------------------------------------------------------------------------------


def get_run(conn: Connection, run_id: str) -> RunDetail:
    """One run and every attempt, the one under way included."""
    row = conn.execute(
        select(*RECORD_COLUMNS, RUNS.c.worker, RUNS.c.attempt_started_at).where(RUNS.c.id == run_id)
    ).one_or_none()
    if row is None:
        raise RunNotFound(f"no task run with id {run_id!r}")
    tries = [
        to_attempt(a)
        for a in conn.execute(
            select(*ATTEMPT_COLUMNS).where(ATTEMPTS.c.run_id == run_id).order_by(ATTEMPTS.c.number)
        )
    ]
    record = to_record(row, extra=("worker", "attempt_started_at"))
    open_ = record.status is RunStatus.running and row.attempt_started_at is not None
    if open_ and all(attempt.number != record.attempts for attempt in tries):
        tries.append(_under_way(record.attempts, row.worker, row.attempt_started_at))
    return RunDetail(record, tries)


def _under_way(number: int, worker: str | None, started_at: datetime) -> AttemptRecord:
    """The attempt a running run is making: its row is written when it ends."""
    return AttemptRecord(
        number=number,
        worker=worker,
        started_at=started_at,
        finished_at=None,
        duration_ms=None,
        outcome=Outcome.running,
        error_type=None,
        error_message=None,
        traceback=None,
        retry_delay_seconds=None,
        response=None,
    )


def find_run(conn: Connection, run_id: str) -> RunRecord | None:
    """One run without its attempts, or None."""
    row = conn.execute(select(*RECORD_COLUMNS).where(RUNS.c.id == run_id)).one_or_none()
    return to_record(row) if row is not None else None


def list_runs(
    conn: Connection, selection: RunFilter, *, limit: int = 50, cursor: str | None = None
) -> RunPage:
    """Runs newest first (ids sort by creation); ``cursor`` continues after a page's last id."""
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be between 1 and {MAX_PAGE}")
    query = select(*RECORD_COLUMNS).where(*selection.condition())
    if cursor:
        query = query.where(RUNS.c.id < cursor)
    rows = conn.execute(query.order_by(RUNS.c.id.desc()).limit(limit + 1)).all()
    page = [to_record(row) for row in rows[:limit]]
    return RunPage(page, page[-1].id if len(rows) > limit else None)


def runs_for_ref(conn: Connection, ref: str) -> list[RunRecord]:
    """Every run referring to ``ref``, oldest first."""
    rows = conn.execute(select(*RECORD_COLUMNS).where(RUNS.c.ref == ref).order_by(RUNS.c.id)).all()
    return [to_record(row) for row in rows]


def count_runs(conn: Connection, selection: RunFilter) -> int:
    """How many runs the filter selects."""
    return int(
        conn.execute(
            select(func.count()).select_from(RUNS).where(*selection.condition())
        ).scalar_one()
    )


def tallied(conn: Connection) -> list[tuple[str | None, str, int]]:
    """The tally summed: (queue, status, count) for every non-zero count."""
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
    for queue, status, count in tallied(conn):
        by_status[status] = by_status.get(status, 0) + count
        by_queue.setdefault(queue or "-", {})[status] = count
    # A queued run is due from next_attempt_at (its creation, or the time it was scheduled for):
    # the smallest one already passed is an index seek on the due index.
    due = [in_due_state(), RUNS.c.status == RunStatus.queued.value]
    if now is not None:
        due.append(RUNS.c.next_attempt_at <= now)
    oldest: datetime | None = conn.execute(
        select(func.min(RUNS.c.next_attempt_at)).where(*due)
    ).scalar_one_or_none()
    return RunStats(by_status, by_queue, oldest)


def queue_figures(conn: Connection, *, now: datetime) -> QueueFigures:
    """Runs not finished by status, and the oldest due run's due time (tally and an index)."""
    active: dict[str, int] = {}
    by_queue: dict[str, dict[str, int]] = {}
    for queue, status, count in tallied(conn):
        active[status] = active.get(status, 0) + count
        by_queue.setdefault(queue or "-", {})[status] = count
    oldest = conn.execute(
        select(func.min(RUNS.c.next_attempt_at)).where(
            in_due_state(), RUNS.c.next_attempt_at <= now
        )
    ).scalar_one_or_none()
    return QueueFigures({s.value: active.get(s.value, 0) for s in ACTIVE}, oldest, by_queue)


def has_runs(ref: ColumnElement[Any], *conditions: ColumnElement[bool]) -> ColumnElement[bool]:
    """A clause true where some run (meeting ``conditions``) refers to ``ref`` (a caller's
    column): to find orphans."""
    return exists().where(RUNS.c.ref == ref, *conditions)


# ---- the dashboard's reads ------------------------------------------------------------------


def attempt_histogram(
    conn: Connection, *, since: datetime, until: datetime, bucket_seconds: int
) -> Histogram:
    """Attempts by outcome per time bucket, from ``since`` to ``until``: the ended ones (one
    grouped query) and those under way (read off their running runs)."""
    if bucket_seconds <= 0 or until <= since:
        raise ValueError("need a positive bucket and until after since")
    buckets = math.ceil((until - since).total_seconds() / bucket_seconds)
    started = ATTEMPTS.c.started_at
    ended = conn.execute(
        select(
            _bucket(conn, started, since, bucket_seconds).label("bucket"),
            ATTEMPTS.c.outcome,
            func.count(),
        )
        .where(started >= since, started < until)
        .group_by("bucket", ATTEMPTS.c.outcome)
    ).all()
    begun = RUNS.c.attempt_started_at
    under_way = conn.execute(
        select(_bucket(conn, begun, since, bucket_seconds).label("bucket"), func.count())
        .where(RUNS.c.status == RunStatus.running.value, begun >= since, begun < until)
        .group_by("bucket")
    ).all()
    counts = {outcome.value: [0] * buckets for outcome in Outcome}
    rows = [*ended, *((bucket, Outcome.running.value, count) for bucket, count in under_way)]
    for bucket, outcome, count in rows:
        if outcome in counts and 0 <= int(bucket) < buckets:
            counts[outcome][int(bucket)] += int(count)
    return Histogram(since, bucket_seconds, buckets, counts)


def _bucket(
    conn: Connection, moment: ColumnElement[Any], since: datetime, bucket_seconds: int
) -> ColumnElement[Any]:
    """Which bucket of ``bucket_seconds`` from ``since`` the column's time falls in, in SQL."""
    if conn.dialect.name == "sqlite":
        # Stored as naive UTC text that julianday() reads. Its float difference is off by
        # microseconds: rounded to whole milliseconds, then integer division (offsets are >= 0).
        millis = cast(
            func.round((func.julianday(moment) - func.julianday(_naive(since))) * 86_400_000.0),
            Integer,
        )
        return millis // (bucket_seconds * 1000)
    offset = func.extract("epoch", moment - _naive(since))
    return cast(func.floor(offset / bucket_seconds), Integer)


def _naive(moment: datetime) -> datetime:
    # The columns hold naive UTC; a literal compared with them in SQL must be naive UTC too.
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def count_due(conn: Connection, *, now: datetime) -> int:
    """How many runs are waiting for a worker and due now (on the due index)."""
    return int(
        conn.execute(
            select(func.count())
            .select_from(RUNS)
            .where(in_due_state(), RUNS.c.next_attempt_at <= now)
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
    query = select(*RECORD_COLUMNS).where(
        *selection.condition(),
        or_(RUNS.c.id == text, RUNS.c.ref == text, RUNS.c.label.like(pattern, escape="\\")),
    )
    if cursor:
        query = query.where(RUNS.c.id < cursor)
    rows = conn.execute(query.order_by(RUNS.c.id.desc()).limit(limit + 1)).all()
    page = [to_record(row) for row in rows[:limit]]
    return RunPage(page, page[-1].id if len(rows) > limit else None)
