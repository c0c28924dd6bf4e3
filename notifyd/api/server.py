"""Serving the app with uvicorn, ending subscribers' streams as soon as shutdown begins."""

from __future__ import annotations

import logging
import socket
from typing import Any

import uvicorn

from notifyd.api.streaming import CutOffFilter
from notifyd.runtime import Runtime


class NotifydServer(uvicorn.Server):
    """uvicorn's server; on shutdown the inbox's streams end first.

    uvicorn waits for open responses before it runs the app's shutdown, and a subscriber's
    stream never ends by itself: without this, every SIGTERM would wait out the grace period.
    """

    def __init__(self, config: uvicorn.Config, runtime: Runtime) -> None:
        super().__init__(config)
        self.runtime = runtime
        logging.getLogger("uvicorn.error").addFilter(CutOffFilter())

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """End the subscriptions (their clients reconnect elsewhere or later), then shut down."""
        self.runtime.inbox.broker.close_all()
        await super().shutdown(sockets)


def serve(app: Any, runtime: Runtime, **options: Any) -> None:
    """Run ``app`` until SIGINT or SIGTERM (``options`` are uvicorn.Config's)."""
    NotifydServer(uvicorn.Config(app, **options), runtime).run()
