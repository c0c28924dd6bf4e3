"""Live fan-out: each published message offered to every subscriber of its topic, in memory.

Every subscriber has a bounded buffer. Offering never waits: a subscriber whose buffer is full
(it reads more slowly than messages come) is dropped, and its connection ends, so that it never
slows a publisher or another subscriber; it reconnects with ``since=<last id>`` and misses
nothing, because every message is in the store first. The broker also counts subscribers
against their limits (per address, per token, in all).

A reader parked with nothing buffered may leave a *sink*: the broker then writes to it at once,
inside the publication, rather than waking the reader's task. A thousand subscribers of a busy
topic then cost a thousand writes per publication, not a thousand task switches besides.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from notifyd.inbox.store import StoredMessage

log = logging.getLogger(__name__)
DROPPED_SLOW = "slow"
DROPPED_SHUTDOWN = "shutdown"
FAN_OUT_CHUNK = 100  # subscribers written to between two turns of the event loop


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


Sink = Callable[[list[Event]], bool]


class Subscription:
    """One subscriber's topics and buffer; read it with ``next`` until it says it is closed."""

    __slots__ = (
        "_busy", "_idle_due", "_items", "_limit", "_timer", "_waiter", "closed", "keys",
        "on_close", "reason", "sink", "topics",
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
        # Takes events while the reader is parked with none buffered (see the module's text):
        # True when it dealt with them, False to have them buffered for the reader instead.
        self.sink: Sink | None = None

    def offer(self, events: list[Event]) -> bool:
        """Hand ``events`` to the sink or buffer them (True), or drop this subscriber when its
        buffer is full (False)."""
        if self.closed:
            return False
        self._busy = True
        sink = self.sink
        if sink is not None and self._waiter is not None and not self._items and sink(events):
            return not self.closed
        if len(self._items) + len(events) > self._limit:
            self.close(DROPPED_SLOW)
            return False
        self._items.extend(events)
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

    def wake(self) -> None:
        """Have the reader's ``next`` return (``[]`` when nothing is buffered)."""
        self._wake()

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
        self._fanning = asyncio.Lock()

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
        return self.publish_all([message])[0]

    def publish_all(self, messages: Sequence[StoredMessage]) -> list[int]:
        """Offer ``messages``, in order, to their topics' subscribers, each subscriber all of
        its share at once; how many took each message."""
        shares, takers = self._shares(messages)
        refused: set[Subscription] = set()
        for subscription, events in shares.items():
            self._offer(subscription, events, refused)
        return _counts(takers, refused)

    async def fan_out(self, messages: Sequence[StoredMessage]) -> list[int]:
        """``publish_all``, letting the event loop run other work every ``FAN_OUT_CHUNK``
        subscribers: a publication to thousands of subscribers then holds up a request for a
        chunk's writes, not for all of them. Fan-outs follow one another, so every subscriber
        gets messages in the same order."""
        async with self._fanning:
            shares, takers = self._shares(messages)
            refused: set[Subscription] = set()
            for done, (subscription, events) in enumerate(shares.items()):
                if done and done % FAN_OUT_CHUNK == 0:
                    await asyncio.sleep(0)
                self._offer(subscription, events, refused)
            return _counts(takers, refused)

    def _shares(
        self, messages: Sequence[StoredMessage]
    ) -> tuple[dict[Subscription, list[Event]], list[list[Subscription]]]:
        """Each subscriber's events, and each message's subscribers.

        Subscribers of the same topics share one list of events (never changed once made):
        a fan-out to thousands allocates a few lists, not one each, so that nothing it makes
        lives long enough to reach the garbage collector's older generations.
        """
        everything = self._everything
        events = [Event(message) for message in messages]
        takers: list[list[Subscription]] = []
        shares: dict[Subscription, list[Event]] = {}
        by_topics: dict[frozenset[str] | None, list[Event]] = {None: events}
        for event in events:
            members = self._by_topic.get(event.message.topic)
            targets = [*members, *everything] if members else list(everything)
            takers.append(targets)
            for subscription in targets:
                if subscription in shares:
                    continue
                topics = subscription.topics
                share = by_topics.get(topics)
                if share is None:
                    share = by_topics[topics] = [
                        e for e in events if topics is None or e.message.topic in topics
                    ]
                shares[subscription] = share
        return shares, takers

    def _offer(
        self, subscription: Subscription, events: list[Event], refused: set[Subscription]
    ) -> None:
        if subscription.offer(events):
            return
        refused.add(subscription)
        if subscription.reason == DROPPED_SLOW:
            self.dropped += 1
            log.warning(
                "inbox: dropped a subscriber of %s that fell %d messages behind; it may "
                "reconnect with since=<its last message id>",
                events[0].message.topic,
                self.limits.buffer,
            )
            self.unsubscribe(subscription)

    def close_all(self) -> None:
        """End every subscription (the server is stopping)."""
        everyone = {s for members in self._by_topic.values() for s in members}
        for subscription in everyone | self._everything:
            subscription.close(DROPPED_SHUTDOWN)
            self.unsubscribe(subscription)


def _counts(takers: list[list[Subscription]], refused: set[Subscription]) -> list[int]:
    if not refused:
        return [len(targets) for targets in takers]
    return [sum(1 for s in targets if s not in refused) for targets in takers]
