"""``notifyd worker``: the dispatcher alone, headless, until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal

from notifyd.config import Settings
from notifyd.db import check_schema
from notifyd.runtime import build_runtime

log = logging.getLogger(__name__)


async def run_worker(settings: Settings) -> None:
    """Run the dispatcher until a stop signal; then stop within the grace period."""
    runtime = build_runtime(settings)
    check_schema(runtime.engine, allow_behind=False)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await runtime.start()
    log.info("notifyd worker %s running", runtime.tracker.dispatcher.worker_id)
    try:
        await stop.wait()
        log.info("stopping: letting running attempts finish (up to %.0fs)", settings.grace_seconds)
    finally:
        await runtime.stop()
