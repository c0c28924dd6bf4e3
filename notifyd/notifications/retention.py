"""Pruning: finished runs older than ``retention_days`` go, then what no longer has a run.

One chunk removes, in one short transaction: finished runs (tracking's ``prune_chunk``; their
attempts go with them), notifications left without runs, expired idempotency records. The
``RetentionLoop`` runs it shortly after start and then hourly; ``notifyd tasks prune`` on demand.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from functools import partial

from sqlalchemy import ColumnElement, Connection, and_, delete, func, not_, select

from notifyd.models import NOTIFICATION_ID_PREFIX, IdempotencyRecord, Notification
from notifyd.tracking import admin
from notifyd.tracking.admin import PruneResult
from notifyd.tracking.background import Background
from notifyd.tracking.clock import id_floor_after
from notifyd.tracking.tracker import Tracker

log = logging.getLogger(__name__)

NOTIFICATIONS = Notification.__table__  # type: ignore[attr-defined]
IDEMPOTENCY = IdempotencyRecord.__table__  # type: ignore[attr-defined]
PRUNE_INTERVAL_SECONDS = 3600.0
FIRST_PRUNE_DELAY_SECONDS = 60.0


def _older(cutoff: datetime) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    """Notifications created before ``cutoff``: the id's index finds them (``created_at`` has
    none), the time itself decides."""
    return (
        NOTIFICATIONS.c.id < id_floor_after(NOTIFICATION_ID_PREFIX, cutoff),
        NOTIFICATIONS.c.created_at < cutoff,
    )


def prune_chunk(
    conn: Connection, *, older_than: timedelta, now: datetime, limit: int = admin.PRUNE_CHUNK
) -> PruneResult:
    """Delete up to ``limit`` each of: finished runs older than ``older_than``, notifications
    of that age left without runs, expired idempotency records. Call until it removes nothing.
    """
    runs = admin.prune_chunk(conn, older_than=older_than, now=now, limit=limit)
    try:
        cutoff = now - older_than
    except OverflowError:  # older than the calendar: nothing is
        return PruneResult(runs)
    # Each DELETE checks its condition again: a run may have been added since the select.
    orphaned = (*_older(cutoff), ~admin.has_runs(NOTIFICATIONS.c.id))
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
    return PruneResult(runs, {"notifications": notifications, "idempotency_records": len(keys)})


def count_prunable(conn: Connection, *, older_than: timedelta, now: datetime) -> PruneResult:
    """What a prune would remove now, counted with reads only (no write lock is taken)."""
    runs = admin.count_prunable(conn, older_than=older_than, now=now)
    prunable = admin.prunable(older_than=older_than, now=now)
    if prunable is None:
        return PruneResult(runs)
    cutoff = now - older_than
    # A notification goes once it is old and no run that stays refers to it.
    orphaned = (
        *_older(cutoff),
        ~admin.has_runs(NOTIFICATIONS.c.id, not_(and_(*prunable))),
    )
    notifications = conn.execute(
        select(func.count()).select_from(NOTIFICATIONS).where(*orphaned)
    ).scalar_one()
    keys = conn.execute(
        select(func.count()).select_from(IDEMPOTENCY).where(IDEMPOTENCY.c.expires_at < now)
    ).scalar_one()
    return PruneResult(
        runs, {"notifications": int(notifications), "idempotency_records": int(keys)}
    )


class RetentionLoop:
    """Prunes once shortly after start, then every hour, through the tracker's writer."""

    def __init__(self, tracker: Tracker, retention_days: float) -> None:
        self.tracker = tracker
        self.older_than = timedelta(days=retention_days)
        self._task = Background("notifyd-retention", self._loop)

    async def prune_once(self) -> PruneResult:
        """Prune now."""
        chunk = partial(prune_chunk, older_than=self.older_than, now=self.tracker.clock())
        # One transaction per chunk, through the writer: accepts are committed in between.
        result = await asyncio.to_thread(admin.prune, lambda: self.tracker.writer.run_sync(chunk))
        notifications = result.extra.get("notifications", 0)
        if result.runs or notifications:
            log.info(
                "retention: pruned %d run(s) and %d notification(s) older than %s",
                result.runs,
                notifications,
                self.older_than,
            )
        return result

    async def _loop(self) -> None:
        await asyncio.sleep(FIRST_PRUNE_DELAY_SECONDS)
        while True:
            try:
                await self.prune_once()
            except Exception:
                log.exception("retention: prune failed; trying again in an hour")
            await asyncio.sleep(PRUNE_INTERVAL_SECONDS)

    def start(self) -> None:
        """Start pruning in the background."""
        self._task.start()

    async def stop(self) -> None:
        """Stop pruning."""
        await self._task.stop()
