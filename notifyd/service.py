"""Use-cases shared by the API and the CLI: submit, list, show. Routes and commands stay thin."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from notifyd import control
from notifyd.channels.base import Channel
from notifyd.delivery import DELIVER_TASK, NotificationContent
from notifyd.destinations import Destinations
from notifyd.errors import InvalidInput, NotFound
from notifyd.idempotency import IdempotencyKeys, record_writer, request_hash
from notifyd.models import (
    FINISHED_STATUSES,
    Attempt,
    AttemptPublic,
    Notification,
    NotificationAccepted,
    NotificationCreate,
    NotificationPublic,
    RunStatus,
    TaskPage,
    TaskRun,
    TaskRunDetail,
    TaskRunPublic,
    TaskStats,
    TaskSummary,
)
from notifyd.redact import redact
from notifyd.routing import Route, adhoc_route, destination_route
from notifyd.timeutil import new_id

if TYPE_CHECKING:
    from notifyd.tracking.tasks import TaskBatch

NOTIFICATIONS = Notification.__table__  # type: ignore[attr-defined]
MAX_PAGE = 500
ANONYMOUS = "anonymous"


def validate_submission(
    body: NotificationCreate, channels: Mapping[str, Channel]
) -> tuple[Channel, list[str]]:
    """The channel and the canonical recipients, or InvalidInput naming what is wrong."""
    channel = channels.get(body.channel)
    if channel is None:
        offered = ", ".join(sorted(channels))
        raise InvalidInput(
            f"channel: unknown channel {body.channel!r}; this server offers {offered}"
        )
    recipients = body.recipients()
    if not recipients:
        raise InvalidInput("to: at least one recipient is required")
    canonical = []
    for index, recipient in enumerate(recipients):
        try:
            canonical.append(channel.validate_recipient(recipient))
        except ValueError as exc:
            where = "to" if isinstance(body.to, str) else f"to[{index}]"
            raise InvalidInput(f"{where}: {exc}") from None
    return channel, list(dict.fromkeys(canonical))


@dataclass(frozen=True)
class Submission:
    """The answer to a submit, and whether it replays an earlier one (same Idempotency-Key)."""

    accepted: NotificationAccepted
    replayed: bool = False


def _route(
    body: NotificationCreate, channels: Mapping[str, Channel], destinations: Destinations | None
) -> Route:
    if body.destination is not None:
        return destination_route(body, destinations or Destinations())
    return adhoc_route(*validate_submission(body, channels))


def _stage(
    batch: TaskBatch,
    body: NotificationCreate,
    channels: Mapping[str, Channel],
    caller: str | None,
    destinations: Destinations | None = None,
    on_stored: Callable[[NotificationContent], None] | None = None,
) -> NotificationAccepted:
    route = _route(body, channels, destinations)
    now = batch.tracker.clock()
    notification_id = new_id("ntf")
    row: dict[str, Any] = {
        "id": notification_id,
        "channel": route.channel,
        "destination": route.destination,
        "subject": body.subject,
        "message": body.message,
        "data": body.data,
        "recipients": [target.shown for target in route.targets],
        "caller": caller,
        "created_at": now,
    }

    batch.add_insert(NOTIFICATIONS, [row])
    if on_stored is not None:
        batch.on_commit(lambda: on_stored(NotificationContent.from_row(row)))
    tasks = []
    for target in route.targets:
        run_id = batch.add_run(
            DELIVER_TASK,
            kwargs={"notification_id": notification_id, "channel": route.channel, **target.args},
            channel=route.channel,
            recipient=target.shown,
            notification_id=notification_id,
            now=now,
        )
        tasks.append(
            TaskSummary(id=run_id, channel=route.channel, to=target.shown, status=RunStatus.queued)
        )
    return NotificationAccepted(id=notification_id, status="accepted", tasks=tasks)


async def submit_notification(
    *,
    batch: TaskBatch,
    body: NotificationCreate,
    channels: Mapping[str, Channel],
    caller: str | None = None,
    idempotency_key: str | None = None,
    destinations: Destinations | None = None,
    keys: IdempotencyKeys | None = None,
    on_stored: Callable[[NotificationContent], None] | None = None,
) -> Submission:
    """Store the notification and one run per recipient in one transaction; return their ids.

    With an ``idempotency_key`` the first answer is stored in the same transaction and replayed
    for a repeat of the same request (see notifyd.idempotency). ``on_stored`` receives the
    notification once it is committed (the server primes its delivery cache with it).
    """
    if idempotency_key is None or keys is None:
        accepted = _stage(batch, body, channels, caller, destinations, on_stored)
        await batch.commit()
        return Submission(accepted)
    keys.check_key(idempotency_key)
    who = caller or ANONYMOUS
    fingerprint = request_hash(body.model_dump(mode="json"))
    now = batch.tracker.clock()
    with keys.claim(who, idempotency_key):
        replay = await asyncio.to_thread(keys.lookup, who, idempotency_key, fingerprint, now)
        if replay is None:
            accepted = _stage(batch, body, channels, caller, destinations, on_stored)
            batch.add_write(
                record_writer(
                    caller=who,
                    key=idempotency_key,
                    fingerprint=fingerprint,
                    notification_id=accepted.id,
                    response=accepted.model_dump(mode="json"),
                    now=now,
                )
            )
            try:
                await batch.commit()
            except IntegrityError:
                # Another process stored this key first: answer as it did.
                replay = await asyncio.to_thread(
                    keys.lookup, who, idempotency_key, fingerprint, now
                )
                if replay is None:
                    raise
            else:
                return Submission(accepted)
    return Submission(NotificationAccepted.model_validate(replay.response), replayed=True)


# ---- reading ---------------------------------------------------------------------------------


def _duration_ms(run: TaskRun) -> float | None:
    if run.started_at is None or run.finished_at is None:
        return None
    return (run.finished_at - run.started_at).total_seconds() * 1000


def run_public(run: TaskRun) -> TaskRunPublic:
    """A run as the API and CLI show it in lists."""
    return TaskRunPublic(
        id=run.id,
        task_name=run.task_name,
        notification_id=run.notification_id,
        channel=run.channel,
        recipient=redact(run.recipient) if run.recipient else None,
        status=RunStatus(run.status),
        attempts=run.attempts,
        max_attempts=run.max_attempts,
        created_at=run.created_at,
        updated_at=run.updated_at,
        next_attempt_at=run.next_attempt_at if run.status == RunStatus.retrying else None,
        started_at=run.started_at,
        finished_at=run.finished_at,
        duration_ms=_duration_ms(run),
        last_error=run.last_error,
    )


def list_runs(
    *,
    session: Session,
    status: RunStatus | None = None,
    channel: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> TaskPage:
    """Runs newest first, filtered; ``cursor`` continues after the last id of a previous page."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit: must be between 1 and {MAX_PAGE}")
    query = select(TaskRun)
    if status is not None:
        query = query.where(TaskRun.status == status.value)
    if channel is not None:
        query = query.where(TaskRun.channel == channel)
    if since is not None:
        query = query.where(col(TaskRun.created_at) >= since)
    if until is not None:
        query = query.where(col(TaskRun.created_at) < until)
    if cursor:
        query = query.where(col(TaskRun.id) < cursor)
    rows = session.exec(query.order_by(col(TaskRun.id).desc()).limit(limit + 1)).all()
    page = rows[:limit]
    next_cursor = page[-1].id if len(rows) > limit else None
    return TaskPage(items=[run_public(run) for run in page], next_cursor=next_cursor)


def _owned_by(session: Session, notification_id: str | None, owner: str) -> bool:
    note = session.get(Notification, notification_id) if notification_id else None
    return note is not None and note.caller == owner


def get_run(*, session: Session, run_id: str, owner: str | None = None) -> TaskRunDetail:
    """One run in full, with its (redacted) arguments and every attempt.

    With ``owner``, only a run of a notification that caller submitted is found.
    """
    run = session.get(TaskRun, run_id)
    if run is None or (owner is not None and not _owned_by(session, run.notification_id, owner)):
        raise NotFound(f"no task run with id {run_id!r}")
    attempts = session.exec(
        select(Attempt).where(Attempt.run_id == run_id).order_by(col(Attempt.number))
    ).all()
    return TaskRunDetail(
        **run_public(run).model_dump(),
        args=redact(run.args),
        attempts_detail=[AttemptPublic.model_validate(a, from_attributes=True) for a in attempts],
    )


def _notification_status(statuses: list[str]) -> str:
    if not statuses:
        return "accepted"
    if all(s == RunStatus.succeeded for s in statuses):
        return "delivered"
    if all(s in FINISHED_STATUSES for s in statuses):
        if all(s == RunStatus.cancelled for s in statuses):
            return "cancelled"
        return "partial" if RunStatus.succeeded in statuses else "failed"
    return "pending"


def get_notification(
    *, session: Session, notification_id: str, owner: str | None = None
) -> NotificationPublic:
    """A notification and the state of its runs; with ``owner``, only one that caller submitted."""
    note = session.get(Notification, notification_id)
    if note is None or (owner is not None and note.caller != owner):
        raise NotFound(f"no notification with id {notification_id!r}")
    runs = session.exec(
        select(TaskRun).where(TaskRun.notification_id == notification_id).order_by(col(TaskRun.id))
    ).all()
    return NotificationPublic(
        id=note.id,
        channel=note.channel,
        destination=note.destination,
        subject=note.subject,
        message=note.message,
        data=note.data,
        to=[redact(r) for r in note.recipients],
        created_at=note.created_at,
        status=_notification_status([run.status for run in runs]),
        tasks=[
            TaskSummary(
                id=run.id,
                channel=run.channel,
                to=run_public(run).recipient,
                status=RunStatus(run.status),
            )
            for run in runs
        ],
    )


def task_stats(*, engine: Engine, now: datetime) -> TaskStats:
    """Counts by status and channel, and the age of the oldest queued run."""
    with engine.connect() as conn:
        return control.stats(conn, now=now)
