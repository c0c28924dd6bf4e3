"""How notifications and their runs are shown: the tracker's generic records in notifyd's words.

A run's ``queue`` is its channel, its ``label`` the recipient as it may be shown, its ``ref``
the notification. The reads themselves are tracking's admin operations; what is added here is
the notification, ownership (a ``send`` token sees only its own) and masking of secrets.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, select

from notifyd.errors import InvalidInput, NotFound
from notifyd.models import (
    AttemptPublic,
    Notification,
    NotificationPublic,
    RunStatus,
    TaskPage,
    TaskRunDetail,
    TaskRunPublic,
    TaskStats,
    TaskSummary,
)
from notifyd.redact import redact
from notifyd.timeutil import utcnow
from notifyd.tracking import admin
from notifyd.tracking.admin import MAX_PAGE as MAX_PAGE
from notifyd.tracking.admin import RunFilter, RunRecord
from notifyd.tracking.errors import RunNotFound
from notifyd.tracking.models import FINISHED

NOTIFICATIONS = Notification.__table__  # type: ignore[attr-defined]


def _scheduled(run: RunRecord, now: datetime) -> bool:
    # Queued for later (send_at/delay), not yet due; an operator's cancel still applies.
    return (
        run.status == RunStatus.queued
        and run.attempts == 0
        and run.next_attempt_at is not None
        and run.next_attempt_at > now
    )


def run_public(run: RunRecord, *, now: datetime | None = None) -> TaskRunPublic:
    """A run as the API and CLI show it in lists."""
    scheduled = _scheduled(run, now or utcnow())
    return TaskRunPublic(
        id=run.id,
        task_name=run.task_name,
        notification_id=run.ref,
        channel=run.queue,
        recipient=redact(run.label) if run.label else None,
        status=run.status,
        attempts=run.attempts,
        max_attempts=run.max_attempts,
        created_at=run.created_at,
        updated_at=run.updated_at,
        next_attempt_at=(
            run.next_attempt_at if run.status == RunStatus.retrying or scheduled else None
        ),
        started_at=run.started_at,
        finished_at=run.finished_at,
        duration_ms=run.duration_ms,
        last_error=run.last_error,
        scheduled=scheduled,
    )


def list_runs(
    conn: Connection,
    *,
    status: RunStatus | None = None,
    channel: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> TaskPage:
    """Runs newest first, filtered; ``cursor`` continues after the last id of a previous page."""
    selection = RunFilter(
        statuses=(status,) if status is not None else (), queue=channel, since=since, until=until
    )
    try:
        page = admin.list_runs(conn, selection, limit=limit, cursor=cursor)
    except ValueError as exc:
        raise InvalidInput(f"limit: {exc}") from None
    return TaskPage(items=[run_public(run) for run in page.items], next_cursor=page.next_cursor)


def _caller_of(conn: Connection, notification_id: str | None) -> str | None:
    if notification_id is None:
        return None
    caller: str | None = conn.execute(
        select(NOTIFICATIONS.c.caller).where(NOTIFICATIONS.c.id == notification_id)
    ).scalar_one_or_none()
    return caller


def get_run(conn: Connection, *, run_id: str, owner: str | None = None) -> TaskRunDetail:
    """One run in full, with its (redacted) arguments and every attempt.

    With ``owner``, only a run of a notification that caller submitted is found.
    """
    try:
        detail = admin.get_run(conn, run_id)
    except RunNotFound:
        raise NotFound(f"no task run with id {run_id!r}") from None
    if owner is not None and _caller_of(conn, detail.run.ref) != owner:
        raise NotFound(f"no task run with id {run_id!r}")
    return TaskRunDetail(
        **run_public(detail.run).model_dump(),
        args=redact(detail.run.args),
        attempts_detail=[
            AttemptPublic.model_validate(a, from_attributes=True) for a in detail.attempts
        ],
    )


def notification_status(statuses: list[RunStatus]) -> str:
    """One word for a notification from its runs' states."""
    if not statuses:
        return "accepted"
    if all(s == RunStatus.succeeded for s in statuses):
        return "delivered"
    if all(s in FINISHED for s in statuses):
        if all(s == RunStatus.cancelled for s in statuses):
            return "cancelled"
        return "partial" if RunStatus.succeeded in statuses else "failed"
    return "pending"


def get_notification(
    conn: Connection, *, notification_id: str, owner: str | None = None
) -> NotificationPublic:
    """A notification and the state of its runs; with ``owner``, only one that caller submitted."""
    note = conn.execute(
        select(NOTIFICATIONS).where(NOTIFICATIONS.c.id == notification_id)
    ).one_or_none()
    if note is None or (owner is not None and note.caller != owner):
        raise NotFound(f"no notification with id {notification_id!r}")
    runs = [run_public(run) for run in admin.runs_for_ref(conn, notification_id)]
    return NotificationPublic(
        id=note.id,
        channel=note.channel,
        destination=note.destination,
        subject=note.subject,
        message=note.message,
        data=note.data,
        to=[redact(r) for r in note.recipients],
        created_at=note.created_at,
        status=notification_status([run.status for run in runs]),
        priority=note.priority,
        send_at=note.send_at,
        tasks=[
            TaskSummary(id=run.id, channel=run.channel, to=run.recipient, status=run.status)
            for run in runs
        ],
    )


def task_stats(conn: Connection, *, now: datetime) -> TaskStats:
    """Counts by status and channel, and the age of the oldest queued run."""
    found = admin.stats(conn, now=now)
    oldest = found.oldest_queued_at
    return TaskStats(
        by_status=found.by_status,
        by_channel=found.by_queue,
        oldest_queued_at=oldest,
        oldest_queued_age_seconds=(now - oldest).total_seconds() if oldest else None,
    )
