"""The worker's cycle on PostgreSQL: a claim is one statement, a batch of outcomes another.

Each statement is one round trip, and the store is a network hop away: the generic way
(``worker``) took seven for a claim (the clock, a query per due state, the runs' update, the
attempts' insert) and two for a batch of outcomes, and the group commit's thread spent most of
its time waiting on them. Here "now" is read inside the claim (the database's clock, unless the
caller gives one), the due runs are locked with ``FOR UPDATE SKIP LOCKED`` in the same
statement that marks them running, and a batch of outcomes travels as one JSON document
(``json_to_recordset``) that one statement applies to the runs, writing the attempts of those
still held. Both read their answers through ``pipeline.fetch_rows``, so that a group commit
may pipeline them with its other writes. The moves, conditions and values are those of
``worker``'s statements; the tests run both stores.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from notifyd.tracking.engine import records_json
from notifyd.tracking.models import CLAIM, FINISH, RunStatus
from notifyd.tracking.outcomes import AttemptResult, ClaimedRun
from notifyd.tracking.pipeline import fetch_rows

_FINAL = (RunStatus.succeeded, RunStatus.failed)


# The caller's "now", or the database's: the time the statement began, a stable value that the
# due index can be searched with (clock_timestamp() changes per row: a scan of every due run).
_NOW = "coalesce(%(now)s::timestamp, statement_timestamp() AT TIME ZONE 'UTC')"


def _due(status: str) -> str:
    # One query per due state, each walking the due index in order (see ``worker.claim_due``).
    return (
        f"due_{status} AS (SELECT r.id, r.queue, r.next_attempt_at FROM task_run r "
        f"WHERE r.status = '{status}' AND r.next_attempt_at <= {_NOW} "
        "AND (r.queue IS NULL OR r.queue <> ALL (%(full)s::varchar[])) "
        # Due order alone, which the index gives: ties broken by id made PostgreSQL sort
        # every due run (the picked ones are put in (due, id) order afterwards).
        "ORDER BY r.next_attempt_at LIMIT %(fetch)s FOR UPDATE OF r SKIP LOCKED)"
    )


CLAIM_SQL = (
    f"WITH clock AS (SELECT {_NOW} AS now), "
    + "".join(f"{_due(status)}, " for status in CLAIM.source_values)
    + "due AS ("
    + " UNION ALL ".join(f"SELECT * FROM due_{status}" for status in CLAIM.source_values)
    + "), "
    # A queue with a cap takes at most its free slots (its runs in due order).
    "ranked AS (SELECT due.id, due.next_attempt_at, cap.free, row_number() OVER "
    "(PARTITION BY due.queue ORDER BY due.next_attempt_at, due.id) AS nth FROM due "
    "LEFT JOIN unnest(%(capped)s::varchar[], %(free)s::int[]) AS cap(queue, free) "
    "ON cap.queue = due.queue), "
    "picked AS (SELECT id FROM ranked WHERE free IS NULL OR nth <= free "
    "ORDER BY next_attempt_at, id LIMIT %(limit)s), "
    "claimed AS (UPDATE task_run SET "
    f"status = '{RunStatus.running.value}', attempts = task_run.attempts + 1, "
    "worker = %(worker)s, lease_expires_at = clock.now + make_interval(secs => %(lease)s), "
    "started_at = coalesce(task_run.started_at, clock.now), attempt_started_at = clock.now, "
    "updated_at = clock.now "
    "FROM picked, clock WHERE task_run.id = picked.id RETURNING task_run.id, "
    "task_run.task_name, task_run.args::text AS args, task_run.queue, task_run.label, "
    "task_run.attempts, task_run.max_attempts, task_run.interruptions, "
    "task_run.next_attempt_at, task_run.created_at, task_run.trace_context, clock.now) "
    "SELECT * FROM claimed"
)


def _aware(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.replace(tzinfo=UTC)


def _naive(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


def claim(
    conn: Connection,
    *,
    now: datetime | None,
    limit: int,
    worker: str,
    lease_seconds: float,
    caps: Mapping[str, int],
) -> tuple[datetime | None, list[ClaimedRun]]:
    """Claim in one statement; returns the claim's "now" (None when nothing was due) and the
    runs in due order. ``now`` None: the database's clock."""
    full = [name for name, free in caps.items() if free <= 0]
    capped = [name for name, free in caps.items() if free > 0]
    params = {
        "now": _naive(now),
        "full": full,
        "fetch": limit * 2 if caps else limit,
        "capped": capped,
        "free": [caps[name] for name in capped],
        "limit": limit,
        "worker": worker,
        "lease": lease_seconds,
    }
    rows = sorted(
        fetch_rows(conn, CLAIM_SQL, params),
        key=lambda row: (row.next_attempt_at, row.id),
    )
    if not rows:
        return None, []
    loads: Callable[[str], Any] = conn.dialect._json_deserializer or json.loads
    started = _aware(rows[0].now)
    assert started is not None
    return started, [
        ClaimedRun(
            id=row.id,
            task_name=row.task_name,
            args=loads(row.args),
            queue=row.queue,
            attempt=row.attempts,
            max_attempts=row.max_attempts,
            interruptions=row.interruptions,
            started_at=started,
            label=row.label,
            created_at=_aware(row.created_at),
            trace_context=row.trace_context,
        )
        for row in rows
    ]


FINISH_SQL = (
    # The batch travels as one JSON document (``engine.records_json``): per-column arrays made
    # the driver dump every value one by one, more than the statement's own time.
    "WITH r AS (SELECT * FROM json_to_recordset(%(results)s::json) AS r(id varchar, "
    "number int, started timestamp, finished timestamp, duration float8, outcome varchar, "
    "error_type varchar, error_message text, traceback text, delay float8, response text, "
    "status varchar, next timestamp, run_finished timestamp, error text, released int)), "
    # Only the runs still this worker's move on, and only their attempts are written: the
    # update rechecks each row as it stands when its lock is taken, so a run rescued by a
    # sweep meanwhile (its attempt recorded as interrupted) is left with that record.
    "runs AS (UPDATE task_run SET status = r.status, next_attempt_at = r.next, "
    "lease_expires_at = NULL, worker = NULL, attempt_started_at = NULL, "
    "finished_at = r.run_finished, last_error = r.error, updated_at = r.finished, "
    "interruptions = task_run.interruptions + r.released FROM r "
    f"WHERE task_run.id = r.id AND task_run.status = '{FINISH.sources[0].value}' "
    "AND task_run.worker = %(worker)s AND task_run.attempts = r.number "
    "RETURNING task_run.id), "
    "attempts AS (INSERT INTO attempt (run_id, number, worker, started_at, finished_at, "
    "duration_ms, outcome, error_type, error_message, traceback, retry_delay_seconds, "
    "response) SELECT r.id, r.number, %(worker)s, r.started, r.finished, r.duration, "
    "r.outcome, r.error_type, r.error_message, r.traceback, r.delay, r.response::json "
    "FROM r JOIN runs ON runs.id = r.id) "
    "SELECT count(*) FROM runs"
)


def finish(conn: Connection, results: Sequence[AttemptResult], *, worker: str) -> int:
    """Record a batch of outcomes in one statement; the runs this worker still held."""
    dumps: Callable[[Any], str] = conn.dialect._json_serializer or json.dumps
    records = []
    for r in results:
        finished = _naive(r.finished_at)
        records.append(
            {
                "id": r.run_id,
                "number": r.attempt,
                "started": _naive(r.started_at),
                "finished": finished,
                "duration": r.duration_ms,
                "outcome": r.outcome.value,
                "error_type": r.error_type,
                "error_message": r.error_message,
                "traceback": r.traceback,
                "delay": r.retry_delay_seconds,
                "response": None if r.response is None else dumps(r.response),
                "status": r.status.value,
                "next": _naive(r.next_attempt_at),
                "run_finished": finished if r.status in _FINAL else None,
                "error": None if r.status is RunStatus.succeeded else r.short_error,
                "released": int(r.released),
            }
        )
    params = {"results": records_json(records), "worker": worker}
    return int(fetch_rows(conn, FINISH_SQL, params)[0][0])
