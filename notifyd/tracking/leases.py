"""A dispatcher's leases: how long they last and how often they are kept and swept
(``DispatcherConfig``), and the store writes that keep its own (renew), hand them back
(release), rescue the runs of a worker that stopped renewing (sweep), and fold the run tally."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Connection

from notifyd.tracking import admin
from notifyd.tracking.clock import new_id

# On SQLite the tally's +1/-1 rows (three per delivered run) are folded every FOLD_SECONDS:
# folded only at each sweep, 5 s of a steady 3,400/s were 50,000 rows, a fold of 20-40 ms on
# the loop. (A fold of the oldest rows only, in chunks, cost more: a DELETE with a WHERE
# removes rows one by one, one without empties the table's pages at once.)
FOLD_SECONDS = 0.5


def default_worker_id() -> str:
    """host:pid:random, unique per dispatcher."""
    return f"{socket.gethostname()}:{os.getpid()}:{new_id('w')[-6:]}"


@dataclass
class DispatcherConfig:
    """How much the dispatcher runs at once and how it keeps and rescues its leases.

    These are the library's defaults; notifyd passes its own settings for every field.
    """

    concurrency: int = 32
    queue_concurrency: Mapping[str, int] = field(default_factory=dict)
    lease_seconds: float = 30.0
    sweep_seconds: float = 5.0
    poll_seconds: float = 1.0
    grace_seconds: float = 30.0


def renew(
    conn: Connection, *, run_ids: Iterable[str], worker: str, now: datetime, seconds: float
) -> int:
    """Extend this worker's leases on ``run_ids`` by ``seconds`` from ``now``."""
    return admin.renew_leases(
        conn, run_ids=run_ids, worker=worker, until=now + timedelta(seconds=seconds)
    )


def release(
    conn: Connection, *, run_ids: list[str], worker: str, now: datetime, reason: str
) -> list[str]:
    """Give runs back at once (interrupted, due again): the worker is shutting down."""
    return admin.interrupt_runs(
        conn, now=now, reason=reason, error_type="Shutdown", run_ids=run_ids, worker=worker
    )


def sweep(conn: Connection, *, now: datetime) -> list[str]:
    """Rescue runs whose lease expired; the same transaction folds the run tally."""
    rescued = admin.interrupt_runs(
        conn,
        now=now,
        reason="the worker stopped renewing its lease (it died or hung)",
        error_type="LeaseExpired",
        expired_before=now,
    )
    admin.compact_tally(conn)
    return rescued


def fold_tally(conn: Connection) -> int:
    """Fold the tally (see ``FOLD_SECONDS``); the rows folded."""
    return admin.compact_tally(conn)
