"""A subscriber's feed as an endless HTTP response (ntfy's JSON stream, SSE, raw; the web inbox).

Written as a plain ASGI response rather than Starlette's StreamingResponse: one small task per
connection watches for the client leaving, and the writer sends every event that is waiting in
one write, so that a thousand idle subscribers cost little and a busy topic costs one write per
subscriber per wake, not one per message.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from notifyd.inbox.broker import Event
from notifyd.inbox.service import Feed

Render = Callable[[Sequence[Event]], bytes]
GONE = "gone"


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
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            if self.first:
                await send({"type": "http.response.body", "body": self.first, "more_body": True})
            async for batch in feed.batches(self.keepalive_seconds):
                body = self.render_batch(batch) if batch else self.keepalive()
                if body:
                    await send({"type": "http.response.body", "body": body, "more_body": True})
            with contextlib.suppress(OSError):
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            pass  # the client left mid-write
        finally:
            watcher.cancel()
            feed.close()


async def _watch(receive: Receive, feed: Feed) -> None:
    # A subscriber sends nothing after its request; the next message is its leaving.
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            feed.subscription.close(GONE)
            return
