"""The inbox as every way in uses it: open a subscriber's feed, page, delete, prune.

The ntfy and Gotify endpoints, the dashboard's web inbox and ``notifyd subscribe`` all read
through here; none of them touches the store or the broker itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import Connection

from notifyd.inbox.broker import Broker, Event, Subscription
from notifyd.inbox.relay import PgRelay
from notifyd.inbox.store import (
    InboxStore,
    Since,
    StoredMessage,
    Taken,
    delete_message,
    delete_topics,
    prune_messages,
    take_for_publication,
)

log = logging.getLogger(__name__)
T = TypeVar("T")
Write = Callable[[Callable[[Connection], T]], Awaitable[T]]
PRUNE_SECONDS = 60.0
REACHED_KEPT = 10_000  # publications whose subscriber count a run may still ask for


class Feed:
    """One subscriber's messages: the kept ones it asked for, then the live ones, none twice.

    The subscription is made before the kept messages are read, so a message published in
    between is not missed; one that comes both ways is given once.
    """

    def __init__(
        self, broker: Broker, subscription: Subscription, backlog: list[StoredMessage]
    ) -> None:
        self._broker = broker
        self.subscription = subscription
        self._backlog = backlog
        self._seen = {message.seq for message in backlog}

    @property
    def backlog(self) -> list[StoredMessage]:
        """The kept messages, oldest first."""
        return self._backlog

    async def batches(self, keepalive: float) -> AsyncIterator[list[Event]]:
        """Lists of events as they come (the backlog first); ``[]`` when ``keepalive`` seconds
        pass without one. Ends when the subscription is dropped or closed."""
        if self._backlog:
            yield [Event(message) for message in self._backlog]
        while True:
            events = await self.subscription.next(keepalive)
            if events is None:
                return
            if events and self._seen:
                events = self.fresh(events)
                if not events:
                    continue
            yield events

    def fresh(self, events: list[Event]) -> list[Event]:
        """``events`` without those the backlog already gave."""
        seen = self._seen
        return [e for e in events if e.message.seq not in seen] if seen else events

    def close(self) -> None:
        """Leave the broker (idempotent)."""
        self._broker.unsubscribe(self.subscription)


@dataclass(frozen=True, slots=True)
class Publication:
    """What publishing a notification's message did: the message (None: gone meanwhile), how
    many subscribers here took it, whether it was announced to the other processes (None: no
    relay), or that it had been published ``before``."""

    message: StoredMessage | None
    subscribers: int = 0
    announced: bool | None = None
    before: bool = False


@dataclass
class Inbox:
    """The store, the live fan-out and its relay across processes, and their settings."""

    store: InboxStore
    broker: Broker
    write: Write[Any]
    clock: Callable[[], datetime]
    keep: timedelta = timedelta(hours=12)
    per_topic: int = 1000
    keepalive_seconds: float = 45.0
    relay: PgRelay | None = None
    # After a fan-out, the next waits this share of its time (at most the max): messages that
    # come meanwhile go out together, one write per subscriber for all of them, and the loop
    # keeps time for the rest of its work. With a thousand subscribers a fan-out takes ~15 ms;
    # resting half that cut the p99 publish-to-receive at 100 messages/s by a fifth
    # (bench/fanout.py), and with a few subscribers the rest is a fraction of a millisecond.
    fan_out_rest: float = 0.5
    fan_out_rest_max: float = 0.05
    _pruning: asyncio.Task[None] | None = field(default=None, init=False, repr=False)
    _offers: list[tuple[str, str, asyncio.Future[Publication]]] = field(
        default_factory=list, init=False, repr=False
    )
    _publishing: asyncio.Task[None] | None = field(default=None, init=False, repr=False)
    _to_offer: deque[tuple[list[asyncio.Future[Publication]], list[Taken]]] = field(
        default_factory=deque, init=False, repr=False
    )
    _offering: asyncio.Task[None] | None = field(default=None, init=False, repr=False)
    _rested_at: float = field(default=0.0, init=False, repr=False)
    # PostgreSQL: the last publication offered here, and how many took each recent one.
    _cursor: tuple[datetime, int] | None = field(default=None, init=False, repr=False)
    _catching: asyncio.Lock = field(default_factory=asyncio.Lock, init=False, repr=False)
    _reached: dict[int, int] = field(default_factory=dict, init=False, repr=False)
    _last_stamp: datetime | None = field(default=None, init=False, repr=False)

    async def open_feed(
        self,
        topics: Sequence[str] | None,
        since: Since,
        *,
        address: str,
        token: str | None,
        scheduled: bool = False,
    ) -> Feed:
        """Subscribe to ``topics`` and read what ``since`` asks for; SubscriberLimit when a
        limit is reached."""
        subscription = self.broker.subscribe(topics, address=address, token=token)
        try:
            backlog = await self.read(topics, since, scheduled=scheduled) if topics else []
        except BaseException:
            self.broker.unsubscribe(subscription)
            raise
        return Feed(self.broker, subscription, backlog)

    async def read(
        self, topics: Sequence[str], since: Since, *, scheduled: bool = False
    ) -> list[StoredMessage]:
        """The kept messages ``since`` asks for (a poll), oldest first."""
        read = partial(self.store.read, list(topics), since, now=self.clock(), scheduled=scheduled)
        return await asyncio.to_thread(read)

    async def page(
        self, topics: Sequence[str] | None, *, limit: int, before: int = 0
    ) -> list[StoredMessage]:
        """The newest ``limit`` messages of ``topics`` (None: every topic) below ``before``,
        newest first."""
        chosen = list(topics) if topics is not None else None
        page = partial(self.store.page, chosen, now=self.clock(), limit=limit, before=before)
        return await asyncio.to_thread(page)

    async def delete(self, seq: int, topics: Sequence[str] | None) -> bool:
        """Delete one message (of ``topics``, when given); whether it was there."""
        found: bool = await self.write(partial(delete_message, seq=seq, topics=topics))
        return found

    async def topics(self) -> list[str]:
        """The topics that hold messages now."""
        return await asyncio.to_thread(self.store.topics)

    async def clear(self, topics: Sequence[str]) -> int:
        """Delete every message of ``topics``."""
        removed: int = await self.write(partial(delete_topics, topics=topics))
        return removed

    async def publish(self, notification_id: str, topic: str) -> Publication:
        """Publish the message a notification made in ``topic``: record when, offer it to this
        process's subscribers and announce it to the others. A message published before (by an
        attempt whose end was never recorded) is not offered again: whoever got it then would
        get it twice.

        Publications that come together are read and stamped in order in one transaction, then
        offered in that same order, so that a replay ("since the last one I got") follows
        exactly the order live subscribers saw.
        """
        future: asyncio.Future[Publication] = asyncio.get_running_loop().create_future()
        self._offers.append((notification_id, topic, future))
        if self._publishing is None or self._publishing.done():
            self._publishing = asyncio.create_task(self._publish_waiting())
        return await future

    def _stamp(self) -> datetime:
        now = self.clock()
        if self._last_stamp is not None and now <= self._last_stamp:
            now = self._last_stamp + timedelta(microseconds=1)
        self._last_stamp = now
        return now

    async def _publish_waiting(self) -> None:
        while self._offers:
            batch, self._offers = self._offers, []
            wanted = [
                (notification_id, topic, self._stamp()) for notification_id, topic, _ in batch
            ]
            try:
                taken: list[Taken] = await self.write(
                    partial(take_for_publication, wanted=wanted, store_clock=self.relay is not None)
                )
            except Exception as exc:
                for *_, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            # Offered by a task of its own, in order, while the next batch is read and stamped:
            # a fan-out to thousands takes a while, and the next write need not wait for it.
            self._to_offer.append(([future for *_, future in batch], taken))
            if self._offering is None or self._offering.done():
                self._offering = asyncio.create_task(self._offer_stamped())

    async def _offer_stamped(self) -> None:
        loop = asyncio.get_running_loop()
        while self._to_offer:
            rest = self._rested_at - loop.time()
            if rest > 0:
                await asyncio.sleep(rest)
            started = loop.time()
            # Every batch stamped meanwhile goes out in one fan-out, still in order.
            futures: list[asyncio.Future[Publication]] = []
            taken: list[Taken] = []
            while self._to_offer:
                more_futures, more_taken = self._to_offer.popleft()
                futures += more_futures
                taken += more_taken
            fresh = [t.message for t in taken if t.message is not None and not t.before]
            try:
                announced: bool | None = None
                if self.relay is None:
                    reached = dict(
                        zip((m.seq for m in fresh), await self.broker.fan_out(fresh), strict=True)
                    )
                else:
                    # What this process offers is what the store says was published, in its
                    # order: these messages, and any other process's committed before them.
                    await self.catch_up()
                    reached = {m.seq: self._reached.get(m.seq, 0) for m in fresh}
                    if fresh:
                        announced = await self.relay.announce([m.seq for m in fresh])
            except Exception as exc:
                for future in futures:
                    if not future.done():
                        future.set_exception(exc)
                continue
            finally:
                ended = loop.time()
                rest = min((ended - started) * self.fan_out_rest, self.fan_out_rest_max)
                self._rested_at = ended + rest
            for future, took in zip(futures, taken, strict=True):
                if took.message is None or took.before:
                    publication = Publication(took.message, before=took.before)
                else:
                    publication = Publication(took.message, reached[took.message.seq], announced)
                if not future.done():
                    future.set_result(publication)

    async def catch_up(self) -> int:
        """Offer what was published since the last read, every process's, in the store's order
        of publication (PostgreSQL); how many messages."""
        async with self._catching:
            offered = 0
            while True:
                found = await asyncio.to_thread(self.store.published_after, self._cursor)
                if not found:
                    return offered
                for message, count in zip(found, await self.broker.fan_out(found), strict=True):
                    self._reached[message.seq] = count
                while len(self._reached) > REACHED_KEPT:
                    self._reached.pop(next(iter(self._reached)))
                last = found[-1]
                assert last.published_at is not None
                self._cursor = (last.published_at, last.seq)
                offered += len(found)

    async def prune(self) -> int:
        """Delete expired messages and those beyond each topic's bound."""
        removed: int = await self.write(
            partial(prune_messages, now=self.clock(), per_topic=self.per_topic)
        )
        if removed:
            log.info("inbox: pruned %d message(s)", removed)
        return removed

    async def start(self, *, prune: bool = True) -> None:
        """Start the relay (PostgreSQL) and the pruning loop."""
        if self.relay is not None:
            # Live from now: what was published before anyone here subscribed is a replay.
            self._cursor = await asyncio.to_thread(self.store.last_published)
            self.relay.on_announced = self.catch_up
            await self.relay.start()
        if prune and self._pruning is None:
            self._pruning = asyncio.create_task(self._prune_loop(), name="notifyd-inbox-prune")

    async def stop(self) -> None:
        """End every subscription, stop pruning and the relay."""
        self.broker.close_all()
        if self._pruning is not None:
            self._pruning.cancel()
            await asyncio.gather(self._pruning, return_exceptions=True)
            self._pruning = None
        if self.relay is not None:
            await self.relay.stop()

    async def _prune_loop(self) -> None:
        while True:
            await asyncio.sleep(PRUNE_SECONDS)
            try:
                await self.prune()
            except Exception:
                log.exception("inbox: pruning failed; again in a minute")
