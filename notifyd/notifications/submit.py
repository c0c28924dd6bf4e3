"""Submitting a notification: route it, stage it with one run per recipient, commit, answer.

The ``Submitter`` is built once per process (``notifyd.runtime``) from what every submission
needs (the channels, the destinations, the idempotency keys, what to do once stored); the API,
the compatibility endpoints and the tests call ``submit`` with the request's own parts only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import IntegrityError

from notifyd.channels.base import Channel
from notifyd.db import StoreFile
from notifyd.errors import InvalidInput
from notifyd.inbox.models import InboxMessage
from notifyd.inbox.store import message_row
from notifyd.models import (
    DEFAULT_PRIORITY,
    NOTIFICATION_ID_PREFIX,
    Notification,
    NotificationAccepted,
    NotificationCreate,
    RunStatus,
)
from notifyd.notifications.delivery import DELIVER_TASK, NotificationContent
from notifyd.notifications.destinations import Destinations
from notifyd.notifications.idempotency import IdempotencyKeys, record_writer, request_hash
from notifyd.notifications.routing import Route, adhoc_route, destination_route
from notifyd.notifications.secretbox import SecretBox
from notifyd.timeutil import new_id

if TYPE_CHECKING:
    from notifyd.tracking.tasks import TaskBatch

NOTIFICATIONS = Notification.__table__  # type: ignore[attr-defined]
INBOX_MESSAGES = InboxMessage.__table__  # type: ignore[attr-defined]
ANONYMOUS = "anonymous"
QUEUED = RunStatus.queued.value


# Fields added after keys were first stored: hashed only when set, so that a key stored by an
# older version still matches its repeat.
_LATER_FIELDS = {"priority": DEFAULT_PRIORITY, "send_at": None, "delay": None}


def _hashed(body: NotificationCreate) -> dict[str, Any]:
    dumped = body.model_dump(mode="json")
    for name, default in _LATER_FIELDS.items():
        if dumped.get(name) == default:
            dumped.pop(name, None)
    return dumped


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


@dataclass(slots=True)
class Submission:
    """The answer to a submit, and whether it replays an earlier one (same Idempotency-Key)."""

    accepted: NotificationAccepted
    replayed: bool = False


@dataclass
class Submitter:
    """Everything a submission needs besides the request itself; one per process."""

    channels: Mapping[str, Channel]
    destinations: Destinations = field(default_factory=Destinations)
    keys: IdempotencyKeys | None = None
    on_stored: Callable[[NotificationContent], None] | None = None
    secrets: SecretBox | None = None  # encrypts ad-hoc recipients that carry secrets
    # The SQLite file deleted while serving: every commit checks it (the tracker's writer), and
    # so does a replay, which commits nothing but would answer from the lost file.
    store_file: StoreFile | None = None
    inbox_keep: timedelta = timedelta(hours=12)  # how long an inbox topic keeps a message

    def route(self, body: NotificationCreate) -> Route:
        """Where ``body`` goes: a configured destination, or its channel and recipients."""
        if body.destination is not None:
            return destination_route(body, self.destinations)
        return adhoc_route(*validate_submission(body, self.channels), self.secrets)

    async def submit(
        self,
        batch: TaskBatch,
        body: NotificationCreate,
        *,
        caller: str | None = None,
        idempotency_key: str | None = None,
        fingerprint: str | None = None,
    ) -> Submission:
        """Store the notification and one run per recipient in one transaction; return their ids.

        With an ``idempotency_key`` the first answer is stored in the same transaction and
        replayed for a repeat of the same request (see notifyd.notifications.idempotency).
        ``fingerprint`` says what makes a repeat the same request (default: the whole body);
        a key derived from an event (an alert group's state) passes its own.
        """
        keys = self.keys
        if idempotency_key is None or keys is None:
            accepted = self._stage(batch, body, caller)
            await batch.commit()
            return Submission(accepted)
        keys.check_key(idempotency_key)
        if self.store_file is not None:
            self.store_file.check()
        who = caller or ANONYMOUS
        if fingerprint is None:
            fingerprint = request_hash(_hashed(body))
        now = batch.tracker.clock()
        with keys.claim(who, idempotency_key):
            replay = await asyncio.to_thread(keys.lookup, who, idempotency_key, fingerprint, now)
            if replay is None:
                accepted = self._stage(batch, body, caller)
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
                    # Another process stored this key first: answer as it did. The batch
                    # has discarded what it staged, so nothing is committed a second time.
                    batch.discard()
                    replay = await asyncio.to_thread(
                        keys.lookup, who, idempotency_key, fingerprint, now
                    )
                    if replay is None:
                        raise
                else:
                    return Submission(accepted)
        return Submission(NotificationAccepted.model_validate(replay.response), replayed=True)

    def _stage(
        self,
        batch: TaskBatch,
        body: NotificationCreate,
        caller: str | None,
    ) -> NotificationAccepted:
        route = self.route(body)
        now = batch.tracker.clock()
        try:
            run_at = body.run_at(now)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
        notification_id = new_id(NOTIFICATION_ID_PREFIX, at=now)
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
            "priority": body.priority,
            "send_at": run_at,
        }
        batch.add_insert(NOTIFICATIONS, [row])
        on_stored = self.on_stored
        if on_stored is not None:
            batch.on_commit(lambda: on_stored(NotificationContent.from_row(row)))
        tasks: list[dict[str, Any]] = []
        messages: list[Mapping[str, Any]] = []
        for target in route.targets:
            channel = target.channel or route.channel
            if target.topic is not None:
                # The inbox's message is stored with its notification, in the same transaction.
                messages.append(
                    message_row(
                        topic=target.topic,
                        notification_id=notification_id,
                        published=run_at or now,
                        keep=self.inbox_keep,
                        title=body.subject,
                        message=body.message,
                        priority=body.priority,
                        data=body.data,
                    )
                )
            run_id = batch.add_run(
                DELIVER_TASK,
                kwargs={
                    "notification_id": notification_id,
                    "channel": channel,
                    **target.args,
                },
                queue=channel,
                label=target.shown,
                ref=notification_id,
                now=now,
                run_at=run_at,
            )
            tasks.append({"id": run_id, "channel": channel, "to": target.shown, "status": QUEUED})
        if messages:
            batch.add_insert(INBOX_MESSAGES, messages)
        # Validated from plain values in one call: pydantic-core does that faster than
        # model_construct builds the models in Python (2 us against 5, on the accept path).
        return NotificationAccepted.model_validate(
            {"id": notification_id, "status": "accepted", "tasks": tasks, "send_at": run_at}
        )
