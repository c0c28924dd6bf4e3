"""The delivery task: one run delivers one notification to one recipient through its channel."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ARRAY, JSON, Engine, String, any_, bindparam, func, select

from notifyd.channels.base import Channel, OutgoingMessage
from notifyd.models import DEFAULT_PRIORITY, Notification
from notifyd.notifications.destinations import Destinations
from notifyd.notifications.routing import delivery_target
from notifyd.notifications.secretbox import SecretBox, SecretKeyError
from notifyd.tracking.bulk import select_rows
from notifyd.tracking.errors import PermanentError, ReleasedError
from notifyd.tracking.registry import TaskContext, TaskRegistry

DELIVER_TASK = "notifyd.deliver"
EXTRAS_KEY = "delivery"
NOTIFICATIONS = Notification.__table__  # type: ignore[attr-defined]
_CONTENT = select(
    *(
        NOTIFICATIONS.c[name]
        for name in ("id", "subject", "message", "data", "created_at", "priority")
    )
)
# The ids as one JSON array: one statement whatever their number, so compiled once (a
# worker reads every notification it delivers, thousands a second; see ``bulk.select_rows``).
_CONTENT_BY_IDS_JSON = _CONTENT.where(
    NOTIFICATIONS.c.id.in_(
        select(func.json_each(bindparam("b_ids", type_=JSON)).table_valued("value").c.value)
    )
)
# Elsewhere (PostgreSQL) as one array: ``id = ANY(%(b_ids)s)``.
_CONTENT_BY_IDS = _CONTENT.where(
    NOTIFICATIONS.c.id == any_(bindparam("b_ids", type_=ARRAY(String)))
)
RELEASE_SECONDS = 60.0
_WARN_EVERY = 60.0

log = logging.getLogger("notifyd.delivery")
_warned_at: dict[str, float] = {}


def _release(exc: SecretKeyError) -> ReleasedError:
    """A run this process cannot decrypt is left for a process that can, never failed by this
    one; the operator is told (once a minute per process, not once per run)."""
    now = time.monotonic()
    if now - _warned_at.get(exc.detail, -_WARN_EVERY) >= _WARN_EVERY:
        if len(_warned_at) > 64:  # details name key ids: few, but bounded all the same
            _warned_at.clear()
        _warned_at[exc.detail] = now
        log.warning(
            "%s; such runs are released to wait for a process with the key (again every %d s), "
            "see `notifyd secrets rotate --help`",
            exc.detail,
            RELEASE_SECONDS,
        )
    return ReleasedError(
        f"{exc.detail}; released to wait for a process that holds the key",
        retry_after=RELEASE_SECONDS,
    )


# Not frozen (for every accepted notification, frozen was three times as slow to build);
# nothing changes one once made.
@dataclass(slots=True)
class NotificationContent:
    """What a delivery needs of a notification (immutable once stored, so safe to cache)."""

    id: str
    subject: str | None
    message: str
    data: dict[str, Any] | None
    created_at: datetime
    priority: int = DEFAULT_PRIORITY

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> NotificationContent:
        """From a notification row (a mapping of its columns)."""
        return cls(
            row["id"],
            row["subject"],
            row["message"],
            row["data"],
            row["created_at"],
            row.get("priority") or DEFAULT_PRIORITY,
        )


class DeliveryContext:
    """What the delivery task needs: the store and the channels. Caches the (immutable) notifications."""

    def __init__(
        self,
        engine: Engine,
        channels: Mapping[str, Channel],
        cache_size: int = 8192,
        destinations: Destinations | None = None,
        secrets: SecretBox | None = None,
    ) -> None:
        self.engine = engine
        self.channels = channels
        self.destinations = destinations or Destinations()
        self.secrets = secrets
        self._cache: OrderedDict[str, NotificationContent] = OrderedDict()
        self._cache_size = cache_size
        self._reading: _Reading | None = None

    async def notification(self, notification_id: str) -> NotificationContent:
        """The notification, from the cache or the store.

        Deliveries that miss the cache in the same pass of the event loop (a claim starts up to
        ``concurrency`` of them at once) share one query instead of one each.
        """
        cached = self._cache.get(notification_id)
        if cached is not None:
            self._cache.move_to_end(notification_id)
            return cached
        reading = self._reading
        if reading is None:
            reading = self._reading = _Reading()
            reading.task = asyncio.create_task(self._read(reading))
        reading.ids.add(notification_id)
        assert reading.task is not None
        # Shielded: one delivery cancelled (a shutdown) must not cancel its neighbours' read.
        found = (await asyncio.shield(reading.task)).get(notification_id)
        if found is None:
            raise PermanentError(f"notification {notification_id} no longer exists")
        return found

    async def _read(self, reading: _Reading) -> dict[str, NotificationContent]:
        await asyncio.sleep(0)  # let the deliveries started in this pass add their ids
        self._reading = None
        found = await asyncio.to_thread(self._load_many, sorted(reading.ids))
        for note in found.values():
            self.remember(note)
        return found

    def remember(self, note: NotificationContent) -> None:
        """Cache a notification this process just stored, so its delivery need not read it back."""
        self._cache[note.id] = note
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def _load_many(self, notification_ids: list[str]) -> dict[str, NotificationContent]:
        with self.engine.connect() as conn:
            query = _CONTENT_BY_IDS_JSON if conn.dialect.name == "sqlite" else _CONTENT_BY_IDS
            rows = select_rows(conn, query, {"b_ids": notification_ids})
            return {row.id: NotificationContent.from_row(row._asdict()) for row in rows}


@dataclass
class _Reading:
    """The notifications one shared read fetches, and the task fetching them."""

    ids: set[str] = field(default_factory=set)
    task: asyncio.Task[dict[str, NotificationContent]] | None = None


async def deliver(
    ctx: TaskContext,
    notification_id: str,
    channel: str,
    recipient: str,
    destination: str | None = None,
    recipient_key: str | None = None,
    secret_recipient: str | None = None,
) -> dict[str, Any] | None:
    """Deliver notification ``notification_id`` to ``recipient`` through ``channel``.

    For a named ``destination``, the recipient and its secrets come from the configuration
    (``recipient_key`` says which); ``secret_recipient`` is an ad-hoc recipient in full when
    ``recipient`` is only its masked form (see notifyd.notifications.routing).
    """
    delivery: DeliveryContext = ctx.extras[EXTRAS_KEY]
    target = delivery.channels.get(channel)
    if target is None:
        raise PermanentError(f"channel {channel!r} is not configured on this server")
    try:
        address, settings = delivery_target(
            delivery.destinations,
            channel=channel,
            recipient=recipient,
            destination=destination,
            recipient_key=recipient_key,
            secret_recipient=secret_recipient,
            secrets=delivery.secrets,
        )
    except SecretKeyError as exc:
        raise _release(exc) from None
    note = await delivery.notification(notification_id)
    message = OutgoingMessage(
        delivery_id=ctx.run_id,
        notification_id=note.id,
        subject=note.subject,
        message=note.message,
        data=note.data,
        created_at=note.created_at,
        attempt=ctx.attempt,
        destination=settings,
        priority=note.priority,
    )
    return await target.send(message, address)


def register_delivery(registry: TaskRegistry) -> None:
    """Register the delivery task under its stable name."""
    registry.register(deliver, DELIVER_TASK)
