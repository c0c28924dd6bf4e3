"""The worker's housekeeping: renew its leases, rescue runs whose worker died or shut down
(interrupted attempts), and fold the run tally the counts read."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import Connection, and_, delete, func, insert, select, update

from notifyd.tracking.admin.reads import tallied
from notifyd.tracking.admin.records import ATTEMPTS, MAX_CRASHES, RUNS, TALLY
from notifyd.tracking.models import Outcome, RunStatus


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
    """Record the attempts under way of running runs as interrupted and make the runs due again now.

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
        select(
            RUNS.c.id,
            RUNS.c.attempts,
            RUNS.c.interruptions,
            RUNS.c.crashes,
            RUNS.c.worker,
            RUNS.c.attempt_started_at,
            RUNS.c.updated_at,
        )
        .where(and_(*condition))
        .with_for_update(skip_locked=True)
    ).all()
    if rows:
        conn.execute(
            insert(ATTEMPTS),
            [
                {
                    "run_id": row.id,
                    "number": row.attempts,
                    "worker": row.worker,
                    # A running run has its attempt's start; one that lacks it (written by
                    # hand, say) has its claim's time as its last update.
                    "started_at": row.attempt_started_at or row.updated_at,
                    "finished_at": now,
                    "outcome": Outcome.interrupted.value,
                    "error_type": error_type,
                    "error_message": reason,
                }
                for row in rows
            ],
        )
    for row in rows:
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
                attempt_started_at=None,
                finished_at=now if gave_up else None,
                last_error=f"{error_type}: {reason}"
                + (f" (its worker died {crashes} times; giving up)" if gave_up else ""),
                updated_at=now,
            )
        )
    return [row.id for row in rows]


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
    folded = tallied(conn)
    if rows <= len(folded):
        return 0
    conn.execute(delete(TALLY))
    if folded:
        conn.execute(
            insert(TALLY),
            [{"queue": queue, "status": status, "delta": count} for queue, status, count in folded],
        )
    return int(rows)
