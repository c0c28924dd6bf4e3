"""A subscriber's feed as an endless HTTP response (ntfy's JSON stream, SSE, raw; the web inbox).

Written as a plain ASGI response rather than Starlette's StreamingResponse: one small task per
connection watches for the client leaving, and the writer sends every event that is waiting in
one write, so that a thousand idle subscribers cost little and a busy topic costs one write per
subscriber per wake, not one per message.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from contextvars import ContextVar

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

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
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            if self.first:
                await send({"type": "http.response.body", "body": self.first, "more_body": True})
            async for batch in feed.batches(self.keepalive_seconds):
                body = self.render_batch(batch) if batch else self.keepalive()
                if body:
                    async with writing:
                        await send({"type": "http.response.body", "body": body, "more_body": True})
            async with writing:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            pass  # the client left mid-write
        except asyncio.CancelledError:
            if not writing.aborted:
                raise
            # Dropped while stuck writing to a client that reads no more: end here (uvicorn
            # then closes the connection), rather than wait for the client forever.
            _CUT_OFF.set(True)
        finally:
            watcher.cancel()
            feed.close()


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
