"""Cross-process wake-ups on SQLite: a look at the file's data version every few milliseconds.

SQLite has no NOTIFY: a dispatcher in a process that accepts nothing (a ``notifyd worker``)
would learn of the runs a server committed only at its next poll, a second later, then claim a
second's worth at once, holding the write lock the server's accepts wait for. Instead it looks
at ``PRAGMA data_version`` (which changes whenever another connection commits: a few
microseconds, no lock taken) every ``WATCH_SECONDS``, and looks for due runs when it changed.
Its own commits change it too: the claim that follows finds nothing more and writes nothing, so
the version then stays put. Polling stays as the safety net, as with NOTIFY.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine

from notifyd.tracking.background import Background

log = logging.getLogger(__name__)

WATCH_SECONDS = 0.005


def can_watch(engine: Engine) -> bool:
    """Whether other processes can share the store and be watched (a SQLite file)."""
    database = engine.url.database
    return engine.dialect.name == "sqlite" and bool(database) and database != ":memory:"


class StoreWatcher:
    """Calls ``wake`` whenever another connection committed to the SQLite store."""

    def __init__(
        self, engine: Engine, wake: Callable[[], None], *, seconds: float = WATCH_SECONDS
    ) -> None:
        self._engine = engine
        self._wake = wake
        self._seconds = seconds
        self._task = Background("notifyd-store-watcher", self._run)
        self._raw: Any = None
        self._looked = asyncio.Event()

    def start(self) -> None:
        """Start watching in the background."""
        self._task.start()

    async def stop(self) -> None:
        """Stop watching and give the connection back."""
        await self._task.stop()
        self._close()

    async def looked(self, count: int = 1) -> None:
        """Wait until the watcher has read the version ``count`` more times (a test showing
        that a look woke nobody waits for this, never sleeps)."""
        for _ in range(count):
            await self._looked.wait()

    async def _run(self) -> None:
        last: int | None = None
        while True:
            try:
                version = self._version()
            except Exception as exc:  # a store that went away: a fresh connection next time
                log.debug("could not read the store's data version: %s", type(exc).__name__)
                self._close()
                version = None
            looked, self._looked = self._looked, asyncio.Event()
            looked.set()
            if version is not None and last is not None and version != last:
                self._wake()
            last = version if version is not None else last
            await asyncio.sleep(self._seconds)

    def _version(self) -> int:
        if self._raw is None:
            raw: Any = self._engine.raw_connection()
            self._raw = raw
            # Read on the event loop: never wait there (a version unread is read next time).
            raw.driver_connection.execute("PRAGMA busy_timeout=0")
        return int(self._raw.driver_connection.execute("PRAGMA data_version").fetchone()[0])

    def _close(self) -> None:
        raw, self._raw = self._raw, None
        if raw is not None:
            try:
                raw.invalidate()  # its busy timeout must not reach the pool's other users
                raw.close()
            except Exception:
                log.debug("closing the store watcher's connection failed", exc_info=True)
