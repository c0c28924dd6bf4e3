"""How many tokens the store holds, asked cheaply enough to ask on every request.

While the API is open because no token exists, the first token made (by ``notifyd tokens
create``, in another process) must close it at once, not when the token cache next reloads.
``TokenProbe.counts()`` answers how many tokens exist and how many are revoked. On SQLite it
holds a connection of its own and asks ``PRAGMA data_version`` first, which changes only when
another connection committed (a few microseconds, no I/O); only then does it count again. In
this process the writer commits on every pass of the event loop, so the answer is also kept for
the rest of the pass that asked: every request answered in a pass arrived before the pass began,
so one read taken during it is newer than all of them (a pass answers dozens under load). Other
stores count off the event loop on a connection of the probe's own (autocommit: one round trip,
no pool checkout, ping or rollback), and concurrent callers share a count: each waits for one
that began after it asked, so none answers from a count older than its request. Under load that
is one count per round of requests instead of one each (on PostgreSQL it was three round trips
and a thread hop per request, queued behind the default executor's few threads).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from notifyd.db import sqlite_path
from notifyd.models import ApiToken

API_TOKENS = ApiToken.__table__  # type: ignore[attr-defined]
log = logging.getLogger(__name__)
Counts = tuple[int, int]  # tokens ever made, of them revoked
_COUNT_SQL = f"SELECT count(*), count(revoked_at) FROM {API_TOKENS.name}"


def _count_on_driver(conn: Connection) -> Counts:
    """How many tokens exist, and how many of them are revoked, asked straight through the
    driver's connection: asked about once per request under load, SQLAlchemy's own execution
    was most of its cost."""
    driver: Any = conn.connection.driver_connection
    cursor = driver.cursor()
    try:
        cursor.execute(_COUNT_SQL)
        tokens, revoked = cursor.fetchone()
    finally:
        cursor.close()
    return int(tokens), int(revoked)


def _driver_errors(engine: Engine) -> tuple[type[BaseException], ...]:
    error = getattr(engine.dialect.dbapi, "Error", None)
    return (error,) if isinstance(error, type) and issubclass(error, BaseException) else ()


class TokenProbe:
    """The store's token counts, asked as cheaply as the store allows (see the module)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._path = sqlite_path(engine.url.render_as_string(hide_password=False))
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._version: int | None = None
        self._counts: Counts | None = None
        self._engine_conn: Connection | None = None
        # The count under way (began before anyone waiting for ``_next`` asked) and the one to
        # begin when it ends, shared by everyone who asks meanwhile; both on ``_loop``.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running: asyncio.Future[Counts] | None = None
        self._next: asyncio.Future[Counts] | None = None
        # The SQLite answer read during the current pass of this loop (see the module).
        self._pass_counts: Counts | None = None
        self._pass_loop: asyncio.AbstractEventLoop | None = None

    async def counts(self) -> Counts:
        """The token counts as the store has them now (counted after this call began)."""
        loop = asyncio.get_running_loop()
        if self._path is not None:
            if self._pass_counts is None or self._pass_loop is not loop:
                self._pass_counts, self._pass_loop = self._sqlite_counts(self._path), loop
                loop.call_soon(self._end_pass)  # runs before anything the next pass receives
            return self._pass_counts
        if self._loop is not loop:  # first call, or a new loop (tests): nothing to share
            self._loop, self._running, self._next = loop, None, None
        if self._running is None:
            self._running = loop.create_future()
            self._start(self._running)
            return await asyncio.shield(self._running)
        if self._next is None:
            self._next = loop.create_future()
        return await asyncio.shield(self._next)

    def _end_pass(self) -> None:
        self._pass_counts = None

    def _start(self, future: asyncio.Future[Counts]) -> None:
        task = asyncio.ensure_future(asyncio.to_thread(self._count_through_engine))
        task.add_done_callback(lambda done: self._settle(future, done))

    def _settle(self, future: asyncio.Future[Counts], done: asyncio.Future[Counts]) -> None:
        if not future.done():
            if done.cancelled():
                future.cancel()
            elif (exc := done.exception()) is not None:
                future.set_exception(exc)
            else:
                future.set_result(done.result())
        # Callers who asked while that count ran need one that began after they asked: now.
        self._running, self._next = self._next, None
        if self._running is not None:
            self._start(self._running)

    def _count_through_engine(self) -> Counts:
        errors: tuple[type[BaseException], ...] = (DBAPIError, *_driver_errors(self._engine))
        with self._lock:
            try:
                return _count_on_driver(self._held_connection())
            except errors:
                self._drop_connection()  # a connection the store dropped: a fresh one, once
                return _count_on_driver(self._held_connection())

    def _held_connection(self) -> Connection:
        conn = self._engine_conn
        if conn is None or conn.invalidated or conn.closed:
            conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            self._engine_conn = conn
        return conn

    def _drop_connection(self) -> None:
        conn, self._engine_conn = self._engine_conn, None
        if conn is not None:
            try:
                conn.invalidate()
                conn.close()
            except Exception:  # a dead connection may fail to close; it is dropped either way
                log.debug("closing the token probe's connection failed", exc_info=True)

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
            self._pass_counts = None
            if self._engine_conn is not None:
                self._engine_conn.close()
                self._engine_conn = None
