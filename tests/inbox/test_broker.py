"""The fan-out: every subscriber of a topic offered each message; a slow one dropped alone."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from notifyd.inbox.broker import (
    DROPPED_SLOW,
    FAN_OUT_CHUNK,
    Broker,
    Event,
    Limits,
    SubscriberLimit,
)
from notifyd.inbox.store import StoredMessage

pytestmark = pytest.mark.anyio
WHEN = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


def message(seq: int, topic: str = "phone") -> StoredMessage:
    return StoredMessage(
        seq, f"msg{seq:09d}", topic, WHEN, WHEN + timedelta(hours=12), None, f"m{seq}", 3, (),
        None, {},
    )  # fmt: skip


async def test_each_subscriber_of_a_topic_gets_each_message_once() -> None:
    broker = Broker()
    phone = broker.subscribe(["phone"], address="a", token=None)
    both = broker.subscribe(["phone", "desk"], address="b", token=None)
    everything = broker.subscribe(None, address="c", token=None)
    desk = broker.subscribe(["desk"], address="d", token=None)
    assert broker.publish(message(1, "phone")) == 3
    assert broker.publish(message(2, "desk")) == 3
    assert broker.publish(message(3, "elsewhere")) == 1

    async def seqs(subscription: object) -> list[int]:
        batch = await subscription.next(1.0)  # type: ignore[attr-defined]
        return [event.message.seq for event in batch]

    assert await seqs(phone) == [1]
    assert await seqs(both) == [1, 2]
    assert await seqs(everything) == [1, 2, 3]
    assert await seqs(desk) == [2]
    assert broker.subscribers == 4


async def test_an_idle_subscription_wakes_for_a_keepalive_and_for_a_message() -> None:
    broker = Broker()
    subscription = broker.subscribe(["phone"], address="a", token=None)
    assert await subscription.next(0.01) == []
    waiting = asyncio.create_task(subscription.next(30.0))
    await asyncio.sleep(0)
    broker.publish(message(7))
    batch = await asyncio.wait_for(waiting, 5)
    assert batch is not None and [e.message.seq for e in batch] == [7]


async def test_a_slow_subscriber_is_dropped_and_the_others_still_receive() -> None:
    broker = Broker(Limits(buffer=3))
    slow = broker.subscribe(["phone"], address="slow", token=None)
    fast = broker.subscribe(["phone"], address="fast", token=None)
    for seq in range(1, 6):
        broker.publish(message(seq))
        batch = await fast.next(1.0)
        assert batch is not None and [e.message.seq for e in batch] == [seq]
    assert slow.closed and slow.reason == DROPPED_SLOW
    assert await slow.next(1.0) is None  # its reader ends; it reconnects with since=
    assert broker.subscribers == 1 and broker.dropped == 1
    assert broker.publish(message(6)) == 1


async def test_one_encoding_per_dialect_for_every_subscriber() -> None:
    broker = Broker()
    subscriptions = [broker.subscribe(["phone"], address=str(i), token=None) for i in range(50)]
    calls: list[int] = []

    def encode(found: StoredMessage) -> bytes:
        calls.append(found.seq)
        return found.message.encode()

    broker.publish(message(1))
    for subscription in subscriptions:
        batch = await subscription.next(1.0)
        assert batch is not None and batch[0].encode("json", encode) == b"m1"
    assert calls == [1]


def test_limits_per_address_per_token_and_in_all() -> None:
    broker = Broker(Limits(per_address=2, per_token=3, total=5))
    first = broker.subscribe(["t"], address="1.1.1.1", token="phone")
    broker.subscribe(["t"], address="1.1.1.1", token="phone")
    with pytest.raises(SubscriberLimit, match="one address"):
        broker.subscribe(["t"], address="1.1.1.1", token=None)
    broker.subscribe(["t"], address="2.2.2.2", token="phone")
    with pytest.raises(SubscriberLimit, match="one token"):
        broker.subscribe(["t"], address="3.3.3.3", token="phone")
    broker.unsubscribe(first)
    broker.unsubscribe(first)  # idempotent: counts stay right
    broker.subscribe(["t"], address="1.1.1.1", token="phone")
    broker.subscribe(["t"], address="4.4.4.4", token=None)
    broker.subscribe(["t"], address="5.5.5.5", token=None)
    with pytest.raises(SubscriberLimit, match="server"):
        broker.subscribe(["t"], address="6.6.6.6", token=None)


async def test_close_all_ends_every_reader() -> None:
    broker = Broker()
    subscriptions = [
        broker.subscribe(["a"], address="x", token=None),
        broker.subscribe(None, address="y", token=None),
    ]
    broker.close_all()
    assert broker.subscribers == 0
    for subscription in subscriptions:
        assert await subscription.next(1.0) is None


async def test_a_parked_reader_with_a_sink_is_written_to_without_waking() -> None:
    broker = Broker()
    subscription = broker.subscribe(["phone"], address="a", token=None)
    written: list[list[int]] = []
    taking = True

    def sink(events: list[Event]) -> bool:
        if not taking:
            return False
        written.append([e.message.seq for e in events])
        return True

    subscription.sink = sink
    waiting = asyncio.create_task(subscription.next(30.0))
    await asyncio.sleep(0)
    assert broker.publish_all([message(1), message(2)]) == [1, 1]
    await asyncio.sleep(0)
    assert written == [[1, 2]] and not waiting.done()  # one write for the two; no wake
    taking = False  # the sink is busy: the events are buffered and the reader is woken
    assert broker.publish(message(3)) == 1
    batch = await asyncio.wait_for(waiting, 5)
    assert batch is not None and [e.message.seq for e in batch] == [3]
    assert written == [[1, 2]]


async def test_a_sink_is_not_used_while_events_wait_for_the_reader() -> None:
    broker = Broker()
    subscription = broker.subscribe(["phone"], address="a", token=None)
    used: list[int] = []

    def sink(events: list[Event]) -> bool:
        used.append(len(events))
        return True

    subscription.sink = sink
    broker.publish(message(1))  # nobody parked: buffered
    waiting = asyncio.create_task(subscription.next(30.0))
    broker.publish(message(2))  # the reader has not yet run: still buffered, in order
    batch = await asyncio.wait_for(waiting, 5)
    assert batch is not None and [e.message.seq for e in batch] == [1, 2] and used == []


async def test_a_fan_out_lets_other_work_run_between_chunks_and_keeps_one_order() -> None:
    broker = Broker(Limits(per_address=1000, total=1000))
    count = FAN_OUT_CHUNK * 3
    subscriptions = [broker.subscribe(["phone"], address="a", token=None) for _ in range(count)]
    seen_between: list[int] = []

    async def meanwhile() -> None:
        for _ in range(4):
            seen_between.append(sum(1 for s in subscriptions if s._items))
            await asyncio.sleep(0)

    first, second, _ = await asyncio.gather(
        broker.fan_out([message(1)]), broker.fan_out([message(2)]), meanwhile()
    )
    assert first == [count] and second == [count]
    assert any(0 < seen < count for seen in seen_between)  # ran while a fan-out was half done
    for subscription in subscriptions:
        batch = await subscription.next(1.0)
        assert batch is not None and [e.message.seq for e in batch] == [1, 2]
