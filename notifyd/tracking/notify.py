"""Cross-process wake-ups on PostgreSQL: LISTEN/NOTIFY on one channel.

A process that commits new due runs sends ``NOTIFY notifyd_runs`` in the same transaction, so
the signal goes out exactly when the runs become visible. Every dispatcher on PostgreSQL listens
and looks for due runs at once, instead of at its next poll. Polling stays as the safety net: a
lost notification (a listener reconnecting) delays a run by one poll interval, never loses it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from sqlalchemy import Connection, Engine

from notifyd.tracking.background import Background

log = logging.getLogger(__name__)

CHANNEL = "notifyd_runs"
RECONNECT_SECONDS = 2.0


def supports_notify(engine: Engine) -> bool:
    """Whether the store can carry wake-ups (PostgreSQL)."""
    return engine.dialect.name == "postgresql"


def notify_runs(conn: Connection) -> None:
    """Signal listeners; delivered when the surrounding transaction commits."""
    conn.exec_driver_sql(f"NOTIFY {CHANNEL}")


def _conninfo(engine: Engine) -> str:
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


class Listener:
    """Calls ``wake`` whenever any process signals new runs; reconnects when dropped."""

    def __init__(self, engine: Engine, wake: Callable[[], None]) -> None:
        self._conninfo = _conninfo(engine)
        self._wake = wake
        self._task = Background("notifyd-listener", self._run)
        self.listening = asyncio.Event()

    def start(self) -> None:
        """Start listening in the background."""
        self._task.start()

    async def stop(self) -> None:
        """Stop listening."""
        await self._task.stop()

    async def _run(self) -> None:
        import psycopg  # only PostgreSQL stores listen: SQLite apps need not install it

        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._conninfo, autocommit=True
                ) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    # Runs committed while we were not listening are found by this look.
                    self._wake()
                    async for _ in conn.notifies():
                        self._wake()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.listening.clear()
                log.warning(
                    "wake-up listener lost its connection (%s); polling until it is back",
                    type(exc).__name__,
                )
                await asyncio.sleep(RECONNECT_SECONDS)
