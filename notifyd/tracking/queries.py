"""The run-state SQL the dispatcher and the service share: claim, finish, renew, rescue, release.

Every function takes a Connection inside a write transaction and does only its own statements.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, Table, and_, bindparam, func, insert, or_, select, update

from notifyd.models import DUE_STATUSES, Attempt, Outcome, RunStatus, TaskRun
from notifyd.tracking.outcomes import AttemptResult

RUNS: Table = TaskRun.__table__  # type: ignore[attr-defined]
ATTEMPTS: Table = Attempt.__table__  # type: ignore[attr-defined]

# A run whose worker died this many times mid-attempt is failed: a task that takes its process
# down with it would otherwise loop forever. (Graceful shutdowns do not count.)
MAX_CRASHES = 5


@dataclass(frozen=True)
class ClaimedRun:
    """A run this worker now holds, with the number of the attempt it is about to make."""

    id: str
    task_name: str
    args: dict[str, Any]
    channel: str | None
    attempt: int
    max_attempts: int
    interruptions: int
    started_at: datetime


def insert_runs(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert new runs (dicts of TaskRun columns)."""
    if rows:
        conn.execute(insert(RUNS), list(rows))


def claim_due(
    conn: Connection,
    *,
    now: datetime,
    limit: int,
    worker: str,
    lease_until: datetime,
    channel_free: Mapping[str, int] | None = None,
) -> list[ClaimedRun]:
    """Atomically take up to ``limit`` due runs: mark them running, leased, with a new attempt.

    ``channel_free`` caps how many runs of a channel may be taken (channels at 0 are skipped).
    On PostgreSQL rows another worker is claiming are skipped (FOR UPDATE SKIP LOCKED); SQLite's
    single writer makes the select-then-update atomic by itself.
    """
    if limit <= 0:
        return []
    caps = dict(channel_free or {})
    full = [name for name, free in caps.items() if free <= 0]
    query = (
        select(
            RUNS.c.id,
            RUNS.c.task_name,
            RUNS.c.args,
            RUNS.c.channel,
            RUNS.c.attempts,
            RUNS.c.max_attempts,
            RUNS.c.interruptions,
        )
        .where(RUNS.c.status.in_([s.value for s in DUE_STATUSES]), RUNS.c.next_attempt_at <= now)
        .order_by(RUNS.c.next_attempt_at, RUNS.c.id)
        .limit(limit * 2 if caps else limit)
        .with_for_update(skip_locked=True)
    )
    if full:
        query = query.where(or_(RUNS.c.channel.is_(None), RUNS.c.channel.not_in(full)))
    picked: list[Row[Any, Any, Any, Any, Any, Any, Any]] = []
    for row in conn.execute(query):
        if len(picked) == limit:
            break
        if row.channel in caps:
            if caps[row.channel] <= 0:
                continue
            caps[row.channel] -= 1
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
            channel=row.channel,
            attempt=row.attempts + 1,
            max_attempts=row.max_attempts,
            interruptions=row.interruptions,
            started_at=now,
        )
        for row in picked
    ]


def finish_attempts(conn: Connection, results: Sequence[AttemptResult], *, worker: str) -> int:
    """Record finished attempts and move their runs on; returns how many runs this worker still held.

    A run whose lease was lost (rescued by another worker meanwhile) keeps its new state: only
    the attempt row is completed.
    """
    if not results:
        return 0
    conn.execute(
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
        ),
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
                "b_error": None if r.status is RunStatus.succeeded else _short_error(r),
                "b_updated": r.finished_at,
            }
            for r in results
        ],
    )
    return outcome.rowcount


_FINAL = (RunStatus.succeeded, RunStatus.failed)
# One statement for every finished run of a batch (executemany): building a statement per run
# cost more than the rest of the dispatcher's work per run.
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


def _short_error(result: AttemptResult) -> str | None:
    if result.error_type is None and result.error_message is None:
        return None
    return f"{result.error_type or 'Error'}: {result.error_message or ''}".strip()


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
