"""Fan-out across processes on PostgreSQL: LISTEN/NOTIFY says that messages were published.

The process whose run publishes a message announces ``<origin> <seqs>`` on one channel; every
other process listening then reads what was published since it last read, in the store's order
of publication (``Inbox.catch_up``), and offers it to its own subscribers. Because publishers
take turns and are stamped by the database's clock (``take_for_publication``), that read never
passes over a message committed before one it has seen. A NOTIFY costs one round trip and reaches
listeners within a millisecond or two here, where polling would cost a query per process per
interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from notifyd.tracking.background import Background

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

CHANNEL_PREFIX = "notifyd_inbox_"
RECONNECT_SECONDS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


def conninfo(engine: Engine) -> str:
    """The libpq URL of ``engine``'s database (psycopg's own connections, outside the pool)."""
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


class PgRelay:
    """Announces this process's publications, and has the others' read (``on_announced``)."""

    def __init__(self, engine: Engine) -> None:
        self._url = conninfo(engine)
        # Reads and offers what other processes published; how many messages it offered.
        self.on_announced: Callable[[], Awaitable[int]] | None = None
        self.origin = secrets.token_hex(6)
        self._sender: psycopg.AsyncConnection[object] | None = None
        self._sending = asyncio.Lock()
        self._listener = Background("notifyd-inbox-relay", self._listen)
        self._channel: str | None = None
        self.listening = asyncio.Event()
        self.relayed = 0

    async def start(self) -> None:
        """Start listening (reconnecting on its own when the connection is lost)."""
        self._listener.start()

    async def stop(self) -> None:
        """Stop listening and close both connections."""
        await self._listener.stop()
        if self._sender is not None:
            with contextlib.suppress(Exception):
                await self._sender.close()
            self._sender = None

    async def announce(self, seqs: list[int]) -> bool:
        """Tell the other processes that messages ``seqs`` are published; False if it could not."""
        import psycopg

        # A NOTIFY payload holds at most 8,000 bytes: 500 ids of up to 15 digits fit.
        payloads = [
            f"{self.origin} " + ",".join(str(seq) for seq in seqs[start : start + 500])
            for start in range(0, len(seqs), 500)
        ]
        async with self._sending:
            for _ in range(2):  # once more on a fresh connection, if the kept one was lost
                try:
                    if self._sender is None or self._sender.closed:
                        self._sender = await psycopg.AsyncConnection.connect(
                            self._url, autocommit=True
                        )
                    channel = await self._channel_of(self._sender)
                    for payload in payloads:
                        await self._sender.execute("SELECT pg_notify(%s, %s)", (channel, payload))
                    return True
                except psycopg.Error as exc:
                    log.warning("inbox relay: could not announce %d message(s): %s", len(seqs), exc)
                    self._sender = None
        return False

    async def _listen(self) -> None:
        import psycopg

        failures = 0
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._url, autocommit=True
                ) as conn:
                    await conn.execute(f"LISTEN {await self._channel_of(conn)}")
                    self.listening.set()
                    failures = 0
                    async for note in conn.notifies():
                        origin, _, listed = note.payload.partition(" ")
                        seqs = [int(s) for s in listed.split(",") if s.isdigit()]
                        if origin != self.origin and seqs:
                            await self._offer(seqs)
            except psycopg.Error as exc:
                self.listening.clear()
                wait = RECONNECT_SECONDS[min(failures, len(RECONNECT_SECONDS) - 1)]
                failures += 1
                log.warning("inbox relay: listening failed (%s); again in %.1f s", exc, wait)
                await asyncio.sleep(wait)

    async def _channel_of(self, conn: psycopg.AsyncConnection[object]) -> str:
        # NOTIFY reaches the whole database: the channel names the schema too, so that two
        # stores in one database (tests, or two installations) never hear each other.
        if self._channel is None:
            cursor = await conn.execute("SELECT current_database(), current_schema()")
            row = await cursor.fetchone()
            where = f"{row[0]}.{row[1]}" if row is not None else ""  # type: ignore[index]
            self._channel = CHANNEL_PREFIX + hashlib.sha256(where.encode()).hexdigest()[:16]
        return self._channel

    async def _offer(self, seqs: list[int]) -> None:
        if self.on_announced is None:
            return
        try:
            self.relayed += await self.on_announced()
        except Exception:
            log.exception("inbox relay: could not read %d announced message(s)", len(seqs))
