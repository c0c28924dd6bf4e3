"""The worker's claim on SQLite in one statement: ``UPDATE ... WHERE id IN (due) RETURNING``.

The generic claim (``worker._claim``) asks for each due state's first runs, then updates them
by id in an executemany: three statements through SQLAlchemy's machinery per claim. Here the
due runs are found and marked running by one statement (SQLite's single writer makes it atomic),
its RETURNING giving what the dispatcher needs, and only the attempts' insert follows. Each due
state still walks the due index in due order (a test reads the plan). Queues with caps take the
generic way, which counts per queue.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from notifyd.tracking.admin.records import ATTEMPTS, RUNS
from notifyd.tracking.bulk import insert_rows
from notifyd.tracking.models import CLAIM, Outcome, RunStatus
from notifyd.tracking.outcomes import ClaimedRun

# UPDATE ... RETURNING came with SQLite 3.35.
SUPPORTED = sqlite3.sqlite_version_info >= (3, 35)


def _due(status: str) -> str:
    return (
        "SELECT id, next_attempt_at FROM (SELECT id, next_attempt_at FROM task_run "
        f"WHERE status = '{status}' AND next_attempt_at <= :now "
        "ORDER BY next_attempt_at, id LIMIT :limit)"
    )


CLAIM_SQL = (
    f"UPDATE task_run SET status = '{RunStatus.running.value}', attempts = attempts + 1, "
    "worker = :worker, lease_expires_at = :lease, started_at = coalesce(started_at, :now), "
    "updated_at = :now WHERE id IN (SELECT id FROM ("
    + " UNION ALL ".join(_due(status) for status in CLAIM.source_values)
    + ") ORDER BY next_attempt_at, id LIMIT :limit) RETURNING id, task_name, args, queue, "
    "label, attempts, max_attempts, interruptions, next_attempt_at, created_at, trace_context"
)


def claim(
    conn: Connection, *, now: datetime, limit: int, worker: str, lease_until: datetime
) -> list[ClaimedRun]:
    """Claim up to ``limit`` due runs in one statement, then open their attempts."""
    dialect = conn.dialect
    as_text: Callable[[Any], str] = RUNS.c.updated_at.type.bind_processor(dialect)  # type: ignore[assignment]
    params = {"now": as_text(now), "lease": as_text(lease_until), "limit": limit, "worker": worker}
    # RETURNING's order is the store's: put the runs in due order (the text sorts as the time).
    rows = sorted(
        conn.exec_driver_sql(CLAIM_SQL, params).all(),
        key=lambda row: (row.next_attempt_at, row.id),
    )
    if not rows:
        return []
    loads: Callable[[str], Any] = dialect._json_deserializer or json.loads
    insert_rows(
        conn,
        ATTEMPTS,
        [
            {
                "run_id": row.id,
                "number": row.attempts,
                "worker": worker,
                "started_at": now,
                "outcome": Outcome.running.value,
            }
            for row in rows
        ],
    )
    return [
        ClaimedRun(
            id=row.id,
            task_name=row.task_name,
            args=loads(row.args),
            queue=row.queue,
            attempt=row.attempts,
            max_attempts=row.max_attempts,
            interruptions=row.interruptions,
            started_at=now,
            label=row.label,
            created_at=datetime.fromisoformat(row.created_at).replace(tzinfo=UTC),
            trace_context=row.trace_context,
        )
        for row in rows
    ]
