"""How many tokens the store holds, asked cheaply enough to ask on every request.

While the API is open because no token exists, the first token made (by ``notifyd tokens
create``, in another process) must close it at once, not when the token cache next reloads.
``TokenProbe.counts()`` answers how many tokens exist and how many are revoked. On SQLite it
holds a connection of its own and asks ``PRAGMA data_version`` first, which changes only when
another connection committed (a few microseconds, no I/O); only then does it count again. Other
stores count on each call, off the event loop (open mode is for a loopback bind, rarely theirs).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

from sqlalchemy import Connection, Engine, func, select

from notifyd.db import sqlite_path
from notifyd.models import ApiToken

API_TOKENS = ApiToken.__table__  # type: ignore[attr-defined]
Counts = tuple[int, int]  # tokens ever made, of them revoked
_COUNT_SQL = f"SELECT count(*), count(revoked_at) FROM {API_TOKENS.name}"


def count_tokens(conn: Connection) -> Counts:
    """How many tokens exist, and how many of them are revoked."""
    row = conn.execute(select(func.count(), func.count(API_TOKENS.c.revoked_at))).one()
    return int(row[0]), int(row[1])


class TokenProbe:
    """The store's token counts, asked as cheaply as the store allows (see the module)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._path = sqlite_path(engine.url.render_as_string(hide_password=False))
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._version: int | None = None
        self._counts: Counts | None = None

    async def counts(self) -> Counts:
        """The token counts as the store has them now."""
        if self._path is None:
            return await asyncio.to_thread(self._count_through_engine)
        return self._sqlite_counts(self._path)

    def _count_through_engine(self) -> Counts:
        with self._engine.connect() as conn:
            return count_tokens(conn)

    def _sqlite_counts(self, path: Path) -> Counts:
        with self._lock:
            if self._conn is None:
                # Autocommit: every statement reads the newest committed state.
                self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            version = int(self._conn.execute("PRAGMA data_version").fetchone()[0])
            if self._counts is None or version != self._version:
                tokens, revoked = self._conn.execute(_COUNT_SQL).fetchone()
                self._counts, self._version = (int(tokens), int(revoked)), version
            return self._counts

    def close(self) -> None:
        """Close the probe's own connection (it is opened again if asked again)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn, self._version, self._counts = None, None, None
