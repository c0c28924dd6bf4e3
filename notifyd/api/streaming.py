"""A subscriber's feed as an endless HTTP response (ntfy's JSON stream, SSE, raw; the web inbox).

Written as a plain ASGI response rather than Starlette's StreamingResponse: one small task per
connection watches for the client leaving, and the writer sends every event that is waiting in
one write, so that a thousand idle subscribers cost little and a busy topic costs one write per
subscriber per publication, not one per message.

While the response's task waits with nothing to send, the broker writes for it (``DirectWrite``):
the server's send is driven at once, inside the publication, and nearly always finishes without
waiting, because only a client whose socket buffer is full makes it wait. Then the rest of that
one write is handed to the response's task, which finishes it before anything else, and the
events that come meanwhile are buffered as before. A thousand subscribers cost a thousand writes,
not a thousand task switches besides.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Generator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from notifyd.inbox.broker import Event
from notifyd.inbox.service import Feed

Render = Callable[[Sequence[Event]], bytes]
GONE = "gone"
# The ASGI server's own send, put in the scope by the app. The middleware between the app and
# the server adds headers to a response's start and passes each body message on unchanged;
# a thousand subscribers each written to a hundred times a second paid a sixth of the stream's
# CPU in those wrappers. The start still goes through them all.
RAW_SEND = "notifyd.raw_send"
# Set in the task of a response cut off on purpose (see Writing), where uvicorn then logs that
# the response did not complete: CutOffFilter keeps that expected line out of the error log.
_CUT_OFF: ContextVar[bool] = ContextVar("notifyd_cut_off", default=False)


class CutOffFilter(logging.Filter):
    """Drops uvicorn's "returned without completing response" for subscribers cut off on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep every record but that one."""
        return not (_CUT_OFF.get() and record.msg.startswith("ASGI callable returned without"))


class FeedResponse(Response):
    """Streams ``first``, then each batch of the feed rendered, a ``keepalive()`` frame when
    idle, until the client leaves or the subscription is dropped (slow, or shutdown)."""

    def __init__(
        self,
        feed: Feed,
        *,
        render: Render,
        first: bytes,
        keepalive: Callable[[], bytes],
        keepalive_seconds: float,
        media_type: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(
            media_type=media_type,
            headers={"cache-control": "no-cache", "x-accel-buffering": "no", **(headers or {})},
        )
        # Endless: no Content-Length (the base class sets one for its empty body).
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
        self.feed = feed
        self.render_batch = render
        self.first = first
        self.keepalive = keepalive
        self.keepalive_seconds = keepalive_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        feed = self.feed
        watcher = asyncio.create_task(_watch(receive, feed))
        writing = Writing(feed)
        # The start goes through every layer; the body, which none of them changes, goes
        # straight to the server (see RAW_SEND).
        body_send: Send = scope.get(RAW_SEND, send)
        direct = DirectWrite(feed, self._bodies, body_send)
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            if self.first:
                await body_send(
                    {"type": "http.response.body", "body": self.first, "more_body": True}
                )
            feed.subscription.sink = direct
            async for batch in feed.batches(self.keepalive_seconds):
                finished = direct.unfinished is not None
                if finished:
                    async with writing:
                        await direct.finish()
                body = self.render_batch(batch) if batch else b"" if finished else self.keepalive()
                if body:
                    async with writing:
                        await body_send(
                            {"type": "http.response.body", "body": body, "more_body": True}
                        )
            feed.subscription.sink = None
            async with writing:
                if direct.unfinished is not None:
                    await direct.finish()
                await body_send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            pass  # the client left mid-write
        except asyncio.CancelledError:
            if not writing.aborted:
                raise
            # Dropped while stuck writing to a client that reads no more: end here (uvicorn
            # then closes the connection), rather than wait for the client forever.
            _CUT_OFF.set(True)
        finally:
            feed.subscription.sink = None
            direct.discard()
            watcher.cancel()
            feed.close()

    def _bodies(self, events: Sequence[Event]) -> list[Message]:
        body = self.render_batch(events)
        return [{"type": "http.response.body", "body": body, "more_body": True}] if body else []


class DirectWrite:
    """The broker's way to write a feed's events at once, from inside a publication.

    Called only while the response's task waits with nothing buffered, so its writes never
    overlap the task's. The send is run until it first waits; if it waits (the client's socket
    buffer is full), the rest is kept in ``unfinished``, the task is woken to finish it, and
    later events are refused (buffered by the subscription) until it has.
    """

    __slots__ = ("feed", "messages", "send", "unfinished")

    def __init__(
        self, feed: Feed, messages: Callable[[Sequence[Event]], list[Message]], send: Send
    ) -> None:
        self.feed = feed
        self.messages = messages  # the ASGI messages that carry events (body parts, frames)
        self.send = send
        self.unfinished: _Unfinished | None = None

    def __call__(self, events: list[Event]) -> bool:
        """Write ``events`` now (True), or False when an earlier write is not finished."""
        if self.unfinished is not None:
            return False
        messages = self.messages(self.feed.fresh(events))
        for index, message in enumerate(messages):
            sending = self.send(message)
            step = sending if isinstance(sending, Coroutine) else _awaiting(sending)
            try:
                waiting_on = step.send(None)
            except StopIteration:
                continue
            except Exception:  # the client left mid-write
                self.feed.subscription.close(GONE)
                return True
            self.unfinished = _Unfinished(_Rest(step, waiting_on), messages[index + 1 :])
            self.feed.subscription.wake()
            return True
        return True

    async def finish(self) -> None:
        """Finish the write that had to wait, and send what followed it (in the stream's own
        task)."""
        unfinished, self.unfinished = self.unfinished, None
        if unfinished is not None:
            await unfinished.rest
            for message in unfinished.after:
                await self.send(message)

    def discard(self) -> None:
        """Drop a write that will not be finished (the stream is ending)."""
        unfinished, self.unfinished = self.unfinished, None
        if unfinished is not None:
            unfinished.rest.close()


@dataclass(frozen=True, slots=True)
class _Unfinished:
    rest: _Rest  # the send that had to wait
    after: list[Message]  # the messages of the same write not yet sent


async def _awaiting(awaitable: Awaitable[None]) -> None:
    await awaitable


class _Rest:
    """The rest of a coroutine started outside any task that stopped at its first wait: awaiting
    this resumes it in the awaiting task, exactly as if that task had awaited it from the start."""

    __slots__ = ("coroutine", "waiting_on")

    def __init__(self, coroutine: Coroutine[Any, Any, Any], waiting_on: Any) -> None:
        self.coroutine = coroutine
        self.waiting_on = waiting_on

    def __await__(self) -> Generator[Any, Any, Any]:
        coroutine, value = self.coroutine, self.waiting_on
        try:
            while True:
                try:
                    sent = yield value
                except BaseException as exc:  # cancellation, thrown in by the task
                    value = coroutine.throw(exc)
                else:
                    value = coroutine.send(sent)
        except StopIteration as stop:
            return stop.value

    def close(self) -> None:
        """End the coroutine where it waits."""
        self.coroutine.close()


class Writing:
    """Around each write to a subscriber: if its subscription is dropped (too slow) or the server
    stops while the write waits for the client to read, the write is cancelled, so that a client
    that stopped reading holds no task and no buffer. Leaving the block then raises
    CancelledError with ``aborted`` set, for the caller to end its response quietly."""

    def __init__(self, feed: Feed) -> None:
        self._task = asyncio.current_task()
        self._inside = False
        self.aborted = False
        feed.subscription.on_close = self._closed

    def _closed(self, reason: str) -> None:
        if self._inside and reason != GONE and self._task is not None:
            self.aborted = True
            self._task.cancel()

    async def __aenter__(self) -> None:
        self._inside = True

    async def __aexit__(self, *exc: object) -> None:
        self._inside = False
        if self.aborted and self._task is not None:
            self._task.uncancel()


async def _watch(receive: Receive, feed: Feed) -> None:
    # A subscriber sends nothing after its request; the next message is its leaving.
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            feed.subscription.close(GONE)
            return


async def pump_websocket(
    websocket: WebSocket,
    feed: Feed,
    *,
    frames: Callable[[Sequence[Event]], list[str]],
    keepalive_seconds: float,
    first: str | None = None,
) -> None:
    """Send ``first``, then each batch of the feed as text frames, until the client leaves or
    the subscription is dropped (then the socket is closed). An idle wait sends nothing: the
    server's WebSocket pings keep the connection."""
    watcher = asyncio.create_task(_watch_websocket(websocket, feed))
    writing = Writing(feed)

    def texts(events: Sequence[Event]) -> list[Message]:
        return [{"type": "websocket.send", "text": frame} for frame in frames(events)]

    # Frames, like a stream's body, go straight to the server (see RAW_SEND).
    direct = DirectWrite(feed, texts, websocket.scope.get(RAW_SEND, websocket.send))
    try:
        if first is not None:
            await websocket.send_text(first)
        feed.subscription.sink = direct
        async for batch in feed.batches(keepalive_seconds):
            if direct.unfinished is not None:
                async with writing:
                    await direct.finish()
            for frame in frames(batch):
                async with writing:
                    await websocket.send_text(frame)
        feed.subscription.sink = None
        if direct.unfinished is not None:
            async with writing:
                await direct.finish()
        if feed.subscription.reason != GONE:
            await websocket.close()  # dropped (slow) or the server is stopping
    except (WebSocketDisconnect, OSError, RuntimeError):
        pass  # the client left mid-write
    except asyncio.CancelledError:
        if not writing.aborted:
            raise
    finally:
        feed.subscription.sink = None
        direct.discard()
        watcher.cancel()
        feed.close()


async def _watch_websocket(websocket: WebSocket, feed: Feed) -> None:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            feed.subscription.close(GONE)
            return


async def refuse_websocket(websocket: WebSocket, answer: Response, reason: str) -> None:
    """Answer an upgrade with ``answer`` (a peer's error) where the server can, else close."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(answer)
    else:
        await websocket.close(code=1008, reason=reason[:120])
