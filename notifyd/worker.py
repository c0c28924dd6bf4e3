"""``notifyd worker``: the dispatcher alone, headless, until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal

from notifyd.config import Settings
from notifyd.db import check_schema, engine_for, sqlite_path
from notifyd.errors import SchemaError
from notifyd.runtime import build_runtime

log = logging.getLogger(__name__)


async def run_worker(settings: Settings) -> None:
    """Run the dispatcher until a stop signal; then stop within the grace period.

    Unlike ``serve``, a worker does not migrate: it refuses (SchemaError, one line) a store
    that is missing, empty, older or newer than this code.
    """
    url = settings.db_url
    path = sqlite_path(url)
    if path is not None and not path.exists():  # do not create an empty store by a typo
        raise SchemaError(f"no notifyd database at {path}: run `notifyd db upgrade` first")
    engine = engine_for(settings)
    try:
        if check_schema(engine, allow_behind=False) is None:
            shown = engine.url.render_as_string(hide_password=True)
            raise SchemaError(
                f"the database at {shown} has no notifyd schema: run `notifyd db upgrade` first"
            )
    except BaseException:
        engine.dispose()
        raise
    runtime = build_runtime(settings, engine=engine, delivers_only=True)
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
