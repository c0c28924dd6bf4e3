"""Live fan-out: each published message offered to every subscriber of its topic, in memory.

Every subscriber has a bounded buffer. Offering never waits: a subscriber whose buffer is full
(it reads more slowly than messages come) is dropped, and its connection ends, so that it never
slows a publisher or another subscriber; it reconnects with ``since=<last id>`` and misses
nothing, because every message is in the store first. The broker also counts subscribers
against their limits (per address, per token, in all).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from notifyd.inbox.store import StoredMessage

log = logging.getLogger(__name__)
DROPPED_SLOW = "slow"
DROPPED_SHUTDOWN = "shutdown"


class SubscriberLimit(Exception):
    """Too many subscriptions for an address, a token, or the server."""


@dataclass(slots=True)
class Event:
    """One published message with its encodings, made once for every subscriber of a dialect."""

    message: StoredMessage
    encoded: dict[str, bytes] = field(default_factory=dict)

    def encode(self, dialect: str, encoder: Callable[[StoredMessage], bytes]) -> bytes:
        """The message in ``dialect`` (cached: a thousand subscribers, one encoding)."""
        found = self.encoded.get(dialect)
        if found is None:
            found = self.encoded[dialect] = encoder(self.message)
        return found


class Subscription:
    """One subscriber's topics and buffer; read it with ``next`` until it says it is closed."""

    __slots__ = (
        "_busy", "_idle_due", "_items", "_limit", "_timer", "_waiter", "closed", "keys",
        "on_close", "reason", "topics",
    )  # fmt: skip

    def __init__(self, topics: frozenset[str] | None, keys: tuple[str, ...], limit: int) -> None:
        self.topics = topics  # None: every topic
        self.keys = keys
        self._limit = limit
        self._items: deque[Event] = deque()
        self._waiter: asyncio.Future[None] | None = None
        # One keepalive timer per subscription, re-armed when it fires (not one per wait: a
        # busy topic waits a hundred times a second): idle a whole period, it says so.
        self._timer: asyncio.TimerHandle | None = None
        self._busy = False
        self._idle_due = False
        self.closed = False
        self.reason: str | None = None
        # Called once when closed: the reader may be stuck writing to a client that reads no more.
        self.on_close: Callable[[str], None] | None = None

    def offer(self, event: Event) -> bool:
        """Buffer ``event`` (True), or drop this subscriber when its buffer is full (False)."""
        if self.closed:
            return False
        if len(self._items) >= self._limit:
            self.close(DROPPED_SLOW)
            return False
        self._items.append(event)
        self._busy = True
        self._wake()
        return True

    def close(self, reason: str) -> None:
        """End the subscription; its reader sees it at its next ``next``."""
        if not self.closed:
            self.closed, self.reason = True, reason
            self._items.clear()
            self._wake()
            if self._timer is not None:
                self._timer.cancel()
            if self.on_close is not None:
                self.on_close(reason)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def next(self, keepalive: float) -> list[Event] | None:
        """Every buffered event (at least one), ``[]`` when ``keepalive`` seconds passed without
        any (time for a keepalive), or None once closed."""
        if not self._items and not self.closed and not self._idle_due:
            loop = asyncio.get_running_loop()
            if self._timer is None:
                self._timer = loop.call_later(keepalive, self._tick, loop, keepalive)
            waiter = self._waiter = loop.create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        if self.closed:
            return None
        if not self._items:
            self._idle_due = False
            return []
        items = list(self._items)
        self._items.clear()
        self._idle_due = False
        return items

    def _tick(self, loop: asyncio.AbstractEventLoop, keepalive: float) -> None:
        if self.closed:
            return
        if self._busy:
            self._busy = False
        else:
            self._idle_due = True
            self._wake()
        self._timer = loop.call_later(keepalive, self._tick, loop, keepalive)


@dataclass(frozen=True)
class Limits:
    """How many subscriptions one address, one token and the whole server may hold."""

    per_address: int = 30
    per_token: int = 60
    total: int = 10_000
    buffer: int = 256


class Broker:
    """The subscribers of this process, by topic."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self._by_topic: dict[str, set[Subscription]] = {}
        self._everything: set[Subscription] = set()
        self._held: Counter[str] = Counter()
        self._count = 0
        self.dropped = 0

    @property
    def subscribers(self) -> int:
        """How many subscriptions are open."""
        return self._count

    def subscribe(
        self, topics: Iterable[str] | None, *, address: str, token: str | None
    ) -> Subscription:
        """A new subscription to ``topics`` (None: every topic), or SubscriberLimit saying which
        limit is reached."""
        limits = self.limits
        keys = (f"address:{address}",) + ((f"token:{token}",) if token else ())
        if self._count >= limits.total:
            raise SubscriberLimit("the server holds as many subscriptions as it takes")
        if self._held[keys[0]] >= limits.per_address:
            raise SubscriberLimit(f"at most {limits.per_address} subscriptions from one address")
        if token and self._held[keys[1]] >= limits.per_token:
            raise SubscriberLimit(f"at most {limits.per_token} subscriptions with one token")
        subscription = Subscription(
            frozenset(topics) if topics is not None else None, keys, limits.buffer
        )
        for key in keys:
            self._held[key] += 1
        self._count += 1
        if subscription.topics is None:
            self._everything.add(subscription)
        for topic in subscription.topics or ():
            self._by_topic.setdefault(topic, set()).add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        """Forget ``subscription`` (idempotent)."""
        found = subscription in self._everything
        self._everything.discard(subscription)
        for topic in subscription.topics or ():
            members = self._by_topic.get(topic)
            if members is not None and subscription in members:
                found = True
                members.discard(subscription)
                if not members:
                    del self._by_topic[topic]
        if not found:
            return
        self._count -= 1
        for key in subscription.keys:
            self._held[key] -= 1
            if self._held[key] <= 0:
                del self._held[key]
        subscription.close(subscription.reason or "unsubscribed")

    def publish(self, message: StoredMessage) -> int:
        """Offer ``message`` to its topic's subscribers; how many took it."""
        members = self._by_topic.get(message.topic)
        if not members and not self._everything:
            return 0
        event = Event(message)
        reached = 0
        targets = list(members or ())
        if self._everything:
            targets.extend(self._everything)
        for subscription in targets:
            if subscription.offer(event):
                reached += 1
            elif subscription.reason == DROPPED_SLOW:
                self.dropped += 1
                log.warning(
                    "inbox: dropped a subscriber of %s that fell %d messages behind; it may "
                    "reconnect with since=<its last message id>",
                    message.topic,
                    self.limits.buffer,
                )
                self.unsubscribe(subscription)
        return reached

    def close_all(self) -> None:
        """End every subscription (the server is stopping)."""
        everyone = {s for members in self._by_topic.values() for s in members}
        for subscription in everyone | self._everything:
            subscription.close(DROPPED_SHUTDOWN)
            self.unsubscribe(subscription)
