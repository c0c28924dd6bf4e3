"""A subscriber's stream: written straight from the publication while its task waits, and a
write that has to wait for the client finished by the stream's own task, in order."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Sequence

import pytest
from starlette.types import Message

from notifyd.api.streaming import RAW_SEND, DirectWrite, FeedResponse
from notifyd.inbox.broker import Broker, Event
from notifyd.inbox.service import Feed
from tests.inbox.test_broker import message

pytestmark = pytest.mark.anyio


def render(events: Sequence[Event]) -> bytes:
    return b"".join(f"{e.message.seq}\n".encode() for e in events)


def bodies(events: Sequence[Event]) -> list[Message]:
    return [{"type": "http.response.body", "body": render(events), "more_body": True}]


def frames(events: Sequence[Event]) -> list[Message]:
    return [{"type": "http.response.body", "body": render([e])} for e in events]


class Client:
    """An ASGI server's send whose socket buffer can be full (``paused``)."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.writable = asyncio.Event()
        self.writable.set()
        self.sends = 0

    async def send(self, message: Message) -> None:
        self.sends += 1
        if not self.writable.is_set():
            await self.writable.wait()
        if message["type"] == "http.response.body":
            self.bodies.append(message["body"])

    @property
    def text(self) -> str:
        return b"".join(self.bodies).decode()


async def test_a_write_that_need_not_wait_is_done_inside_the_call() -> None:
    broker, client = Broker(), Client()
    feed = Feed(broker, broker.subscribe(["phone"], address="a", token=None), [])
    direct = DirectWrite(feed, bodies, client.send)
    assert direct([Event(message(1)), Event(message(2))])
    assert client.text == "1\n2\n" and direct.unfinished is None


async def test_a_write_that_waits_is_finished_by_the_task_and_later_ones_refused() -> None:
    broker, client = Broker(), Client()
    feed = Feed(broker, broker.subscribe(["phone"], address="a", token=None), [])
    direct = DirectWrite(feed, bodies, client.send)
    client.writable.clear()
    assert direct([Event(message(1))])
    assert direct.unfinished is not None and client.text == ""
    assert not direct([Event(message(2))])  # refused: the subscription buffers it instead
    finishing = asyncio.create_task(direct.finish())
    await asyncio.sleep(0)
    assert not finishing.done()
    client.writable.set()
    await asyncio.wait_for(finishing, 5)
    assert client.text == "1\n" and direct.unfinished is None


async def test_the_frames_after_one_that_waits_follow_it_in_order() -> None:
    broker, client = Broker(), Client()
    feed = Feed(broker, broker.subscribe(["phone"], address="a", token=None), [])
    direct = DirectWrite(feed, frames, client.send)
    assert direct([Event(message(1))])
    client.writable.clear()  # the client's buffer fills after the first frame of the next write
    assert direct([Event(message(2)), Event(message(3)), Event(message(4))])
    assert client.text == "1\n" and direct.unfinished is not None
    client.writable.set()
    await asyncio.wait_for(direct.finish(), 5)
    assert client.text == "1\n2\n3\n4\n"


async def test_a_write_left_unfinished_is_closed_when_the_stream_ends() -> None:
    broker, client = Broker(), Client()
    feed = Feed(broker, broker.subscribe(["phone"], address="a", token=None), [])
    direct = DirectWrite(feed, frames, client.send)
    client.writable.clear()
    assert direct([Event(message(1)), Event(message(2))])
    unfinished = direct.unfinished
    assert unfinished is not None
    direct.discard()
    assert direct.unfinished is None
    assert inspect.getcoroutinestate(unfinished.rest.coroutine) == inspect.CORO_CLOSED
    assert client.text == ""


async def test_a_client_gone_mid_write_closes_the_subscription() -> None:
    broker = Broker()
    subscription = broker.subscribe(["phone"], address="a", token=None)
    feed = Feed(broker, subscription, [])

    async def broken(message: Message) -> None:
        raise OSError("connection reset")

    assert DirectWrite(feed, bodies, broken)([Event(message(1))])
    assert subscription.closed


async def test_the_stream_gives_every_message_once_in_order_through_a_full_buffer() -> None:
    broker, client = Broker(), Client()
    subscription = broker.subscribe(["phone"], address="a", token=None)
    feed = Feed(broker, subscription, [message(1)])  # a backlog, published again live
    response = FeedResponse(
        feed, render=render, first=b"open\n", keepalive=lambda: b"ka\n", keepalive_seconds=30,
        media_type="application/x-ndjson",
    )  # fmt: skip
    leaving = asyncio.Event()

    async def receive() -> Message:
        await leaving.wait()
        return {"type": "http.disconnect"}

    async def layered_send(message: Message) -> None:
        raise AssertionError("the body goes to the server's own send")  # only the start

    async def start_through_layers(message: Message) -> None:
        if message["type"] != "http.response.start":
            await layered_send(message)

    scope = {"type": "http", RAW_SEND: client.send}
    streaming = asyncio.create_task(response(scope, receive, start_through_layers))
    for _ in range(20):
        await asyncio.sleep(0)
    assert client.text == "open\n1\n"
    broker.publish_all([message(1), message(2)])  # written at once; 1 was in the backlog
    assert client.text == "open\n1\n2\n"
    client.writable.clear()
    broker.publish(message(3))  # waits for the client
    broker.publish(message(4))  # buffered behind it
    broker.publish(message(5))
    await asyncio.sleep(0)
    client.writable.set()
    for _ in range(20):
        await asyncio.sleep(0)
    assert client.text == "open\n1\n2\n3\n4\n5\n"
    broker.publish(message(6))  # parked again: written at once
    assert client.text.endswith("5\n6\n")
    leaving.set()
    await asyncio.wait_for(streaming, 5)
    assert broker.subscribers == 0
