"""The worker's delivery cycle: claim due runs, record how their attempts ended.

The statements are built once at import and sent as one executemany per batch: this is the
dispatcher's hot path. Keeping leases and the tally is in ``leases``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Integer,
    Select,
    bindparam,
    func,
    insert,
    or_,
    select,
    update,
)

from notifyd.tracking.admin import worker_pg
from notifyd.tracking.admin.records import (
    ATTEMPTS,
    RUNS,
)
from notifyd.tracking.bulk import execute_many, select_rows
from notifyd.tracking.clock import utcnow
from notifyd.tracking.models import (
    CLAIM,
    RunStatus,
    in_due_state,
)
from notifyd.tracking.outcomes import AttemptResult, ClaimedRun


def _due(status: str, *, skipping_full: bool) -> Select[Any]:
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
            RUNS.c.next_attempt_at,
            RUNS.c.created_at,
            RUNS.c.trace_context,
        )
        .where(
            in_due_state(),
            RUNS.c.status == status,
            RUNS.c.next_attempt_at <= bindparam("b_now"),
        )
        .order_by(RUNS.c.next_attempt_at, RUNS.c.id)
        .limit(bindparam("b_limit", type_=Integer))
        .with_for_update(skip_locked=True)
    )
    if skipping_full:
        skipped = RUNS.c.queue.not_in(bindparam("b_full", expanding=True))
        query = query.where(or_(RUNS.c.queue.is_(None), skipped))
    return query


# Built once: building them for every claim cost more than running them.
_DUE = {
    (status, skipping_full): _due(status, skipping_full=skipping_full)
    for status in CLAIM.source_values
    for skipping_full in (False, True)
}
_CLAIM_RUN = (
    update(RUNS)
    .where(RUNS.c.id == bindparam("b_id"))
    .values(
        status=RunStatus.running.value,
        attempts=bindparam("b_attempt"),
        worker=bindparam("b_worker"),
        lease_expires_at=bindparam("b_lease", type_=RUNS.c.lease_expires_at.type),
        started_at=func.coalesce(
            RUNS.c.started_at, bindparam("b_now", type_=RUNS.c.started_at.type)
        ),
        attempt_started_at=bindparam("b_now", type_=RUNS.c.attempt_started_at.type),
        updated_at=bindparam("b_now", type_=RUNS.c.updated_at.type),
    )
)


def claim_runs(
    conn: Connection,
    *,
    limit: int,
    worker: str,
    lease_seconds: float,
    now: datetime | None = None,
    queue_free: Mapping[str, int] | None = None,
) -> tuple[datetime | None, list[ClaimedRun]]:
    """:func:`claim_due` with the lease as a length; returns the claim's "now" too.

    ``now`` None: the store's clock, on PostgreSQL read inside the claim's own statement (the
    database's time; None comes back when nothing was due), elsewhere the process's.
    """
    if limit <= 0:
        return now, []
    if conn.dialect.name == "postgresql":
        return worker_pg.claim(
            conn,
            now=now,
            limit=limit,
            worker=worker,
            lease_seconds=lease_seconds,
            caps=dict(queue_free or {}),
        )
    now = now or utcnow()
    lease_until = now + timedelta(seconds=lease_seconds)
    return now, _claim(conn, now, limit, worker, lease_until, dict(queue_free or {}))


def claim_due(
    conn: Connection,
    *,
    now: datetime,
    limit: int,
    worker: str,
    lease_until: datetime,
    queue_free: Mapping[str, int] | None = None,
) -> list[ClaimedRun]:
    """Atomically take up to ``limit`` due runs: mark them running, leased, a new attempt begun.

    ``queue_free`` caps how many runs of a queue may be taken (queues at 0 are skipped).
    On PostgreSQL rows another worker is claiming are skipped (FOR UPDATE SKIP LOCKED), in one
    statement (``worker_pg``); SQLite's single writer makes the select-then-update atomic by
    itself.
    """
    if limit <= 0:
        return []
    if conn.dialect.name == "postgresql":
        seconds = (lease_until - now).total_seconds()
        return claim_runs(
            conn,
            now=now,
            limit=limit,
            worker=worker,
            lease_seconds=seconds,
            queue_free=queue_free,
        )[1]
    return _claim(conn, now, limit, worker, lease_until, dict(queue_free or {}))


def _claim(
    conn: Connection,
    now: datetime,
    limit: int,
    worker: str,
    lease_until: datetime,
    caps: dict[str, int],
) -> list[ClaimedRun]:
    full = [name for name, free in caps.items() if free <= 0]
    # One query per due state, each walking the due index in order: a single query over both
    # states made the store sort every due run to find the first few, and a backlog of
    # 100,000 runs made each claim slower than the deliveries it fed.
    due: list[Any] = []
    params: dict[str, Any] = {"b_now": now, "b_limit": limit * 2 if caps else limit}
    if full:
        params["b_full"] = full
    for status in CLAIM.source_values:
        due += select_rows(conn, _DUE[status, bool(full)], params)
    due.sort(key=lambda row: (row.next_attempt_at, row.id))
    picked: list[Any] = []
    for row in due:
        if len(picked) == limit:
            break
        if row.queue in caps:
            if caps[row.queue] <= 0:
                continue
            caps[row.queue] -= 1
        picked.append(row)
    if not picked:
        return []
    execute_many(
        conn,
        _CLAIM_RUN,
        [
            {
                "b_id": row.id,
                "b_attempt": row.attempts + 1,
                "b_worker": worker,
                "b_lease": lease_until,
                "b_now": now,
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
            created_at=row.created_at,
            trace_context=row.trace_context,
        )
        for row in picked
    ]


_FINAL = (RunStatus.succeeded, RunStatus.failed)
_HELD = (
    RUNS.c.id == bindparam("b_run"),
    RUNS.c.status == RunStatus.running.value,
    RUNS.c.worker == bindparam("b_worker"),
    RUNS.c.attempts == bindparam("b_number"),
)
# One statement for every finished run of a batch (executemany): building a statement per run
# cost more than the rest of the dispatcher's work per run. The attempt's row is written now,
# whole, if its run is still this worker's (a run rescued meanwhile has its row already).
_ATTEMPT_VALUES = {
    "run_id": RUNS.c.id,
    "number": RUNS.c.attempts,
    "worker": RUNS.c.worker,
    "started_at": bindparam("b_started", type_=ATTEMPTS.c.started_at.type),
    "finished_at": bindparam("b_finished", type_=ATTEMPTS.c.finished_at.type),
    "duration_ms": bindparam("b_duration", type_=ATTEMPTS.c.duration_ms.type),
    "outcome": bindparam("b_outcome", type_=ATTEMPTS.c.outcome.type),
    "error_type": bindparam("b_error_type", type_=ATTEMPTS.c.error_type.type),
    "error_message": bindparam("b_error_message", type_=ATTEMPTS.c.error_message.type),
    "traceback": bindparam("b_traceback", type_=ATTEMPTS.c.traceback.type),
    "retry_delay_seconds": bindparam("b_delay", type_=ATTEMPTS.c.retry_delay_seconds.type),
    "response": bindparam("b_response", type_=ATTEMPTS.c.response.type),
}
_FINISH_ATTEMPT = insert(ATTEMPTS).from_select(
    list(_ATTEMPT_VALUES), select(*_ATTEMPT_VALUES.values()).where(*_HELD)
)
_FINISH_RUN = (
    update(RUNS)
    .where(*_HELD)
    .values(
        status=bindparam("b_status"),
        next_attempt_at=bindparam("b_next"),
        lease_expires_at=None,
        worker=None,
        attempt_started_at=None,
        finished_at=bindparam("b_finished"),
        last_error=bindparam("b_error"),
        updated_at=bindparam("b_updated"),
        interruptions=RUNS.c.interruptions + bindparam("b_released"),
    )
)


def finish_attempts(conn: Connection, results: Sequence[AttemptResult], *, worker: str) -> int:
    """Record finished attempts and move their runs on; returns how many runs this worker still held.

    A run whose lease was lost (rescued meanwhile: its attempt was recorded as interrupted)
    keeps its new state and that record.
    """
    if not results:
        return 0
    if conn.dialect.name == "postgresql":
        return worker_pg.finish(conn, results, worker=worker)
    execute_many(
        conn,
        _FINISH_ATTEMPT,
        [
            {
                "b_run": r.run_id,
                "b_worker": worker,
                "b_number": r.attempt,
                "b_started": r.started_at,
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
    return execute_many(
        conn,
        _FINISH_RUN,
        [
            {
                "b_run": r.run_id,
                "b_worker": worker,
                "b_number": r.attempt,
                "b_status": r.status.value,
                "b_next": r.next_attempt_at,
                "b_finished": r.finished_at if r.status in _FINAL else None,
                "b_error": None if r.status is RunStatus.succeeded else r.short_error,
                "b_updated": r.finished_at,
                "b_released": int(r.released),
            }
            for r in results
        ],
    )
