"""The active API tokens, held in memory so that authenticating a request costs no query.

The whole table of active tokens (a handful of rows) is reloaded when the copy is older than
``ttl`` seconds, so a new or revoked token takes effect in every process within ``ttl`` (and the
first token at once: the Guard asks ``api.tokenprobe`` while the API is open). A copy past
``RELOAD_AHEAD`` of its ``ttl`` is reloaded in the background, so requests wait for a reload
only when one did not end in time: under load every request arriving during a reload waited
for it, and the reload's thread waited for the busy loop's GIL (a stall of ~30 ms every ttl). A token's
``last_used_at`` is written lazily, at most once per ``touch_interval`` and through the
group-commit writer, so the accept path gains no write of its own.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, select, update

from notifyd.models import ApiToken
from notifyd.timeutil import utcnow
from notifyd.tokens import Scope, hash_token, hashes_match, plausible_token

log = logging.getLogger(__name__)

Clock = Callable[[], float]
SubmitWrite = Callable[[Callable[[Connection], Any]], "Future[Any]"]
DEFAULT_TOUCH_INTERVAL = 60.0
RELOAD_AHEAD = 0.75  # of the ttl: a copy this old is reloaded in the background
API_TOKENS = ApiToken.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class TokenInfo:
    """What a request learns about the token it presented."""

    id: int
    name: str
    scope: Scope
    token_hash: str
    destination: str | None = None  # bound to a destination (clients that name none: Gotify)


class TokenCache:
    """Active tokens by hash, reloaded every ``ttl`` seconds at most."""

    def __init__(
        self,
        engine: Engine,
        *,
        ttl: float,
        submit_write: SubmitWrite | None = None,
        touch_interval: float = DEFAULT_TOUCH_INTERVAL,
        clock: Clock = time.monotonic,
    ) -> None:
        self._engine = engine
        self._ttl = ttl
        self._submit_write = submit_write
        self._touch_interval = touch_interval
        self._clock = clock
        self._by_hash: dict[str, TokenInfo] = {}
        self._ever = False
        self._counts: tuple[int, int] | None = None
        self._loaded_at: float | None = None
        self._lock = threading.Lock()
        self._touched: dict[int, float] = {}
        self._reloading: asyncio.Future[None] | None = None

    @property
    def any_active(self) -> bool:
        """Whether at least one token was active at the last load."""
        return bool(self._by_hash)

    @property
    def any_ever(self) -> bool:
        """Whether any token, revoked ones included, existed at the last load."""
        return self._ever

    @property
    def counts(self) -> tuple[int, int] | None:
        """How many tokens, and of them revoked, there were at the last load (None before)."""
        return self._counts

    def stale(self) -> bool:
        """Whether the copy must be reloaded before it is trusted."""
        return self._loaded_at is None or self._clock() - self._loaded_at >= self._ttl

    async def refresh_if_stale(self) -> None:
        """Reload the copy off the event loop when it is too old."""
        if self.stale():
            await asyncio.to_thread(self.refresh)

    def reload_ahead(self) -> asyncio.Future[None] | None:
        """Start reloading, off the loop and without waiting, a copy that nears its ``ttl``
        (once at a time); the reload under way, if any."""
        loaded = self._loaded_at
        if (
            self._reloading is None
            and loaded is not None
            and self._ttl > 0
            and self._clock() - loaded >= self._ttl * RELOAD_AHEAD
        ):
            reloading = asyncio.ensure_future(asyncio.to_thread(self.refresh, force=True))
            self._reloading = reloading
            reloading.add_done_callback(self._reloaded)
        return self._reloading

    def _reloaded(self, done: asyncio.Future[None]) -> None:
        self._reloading = None
        if not done.cancelled() and (exc := done.exception()) is not None:
            # The copy stays until its ttl; then requests reload it themselves, and fail with it.
            log.warning("reloading the token table failed: %s", type(exc).__name__)

    def refresh(self, *, force: bool = False) -> None:
        """Reload the active tokens (once, however many threads ask at the same time)."""
        with self._lock:
            if not force and not self.stale():
                return
            # Revoked rows too (a handful: names are never reused): once a token has existed,
            # revoking every one must not open the API again.
            with self._engine.connect() as conn:
                rows = conn.execute(select(API_TOKENS)).all()
            self._by_hash = {
                row.token_hash: TokenInfo(
                    row.id, row.name, Scope(row.scope), row.token_hash, row.destination
                )
                for row in rows
                if row.revoked_at is None
            }
            self._ever = bool(rows)
            self._counts = (len(rows), sum(1 for row in rows if row.revoked_at is not None))
            self._loaded_at = self._clock()

    def lookup(self, token: str) -> TokenInfo | None:
        """The active token ``token`` is, or None."""
        if not plausible_token(token):
            return None
        candidate = hash_token(token)
        info = self._by_hash.get(candidate)
        if info is None or not hashes_match(info.token_hash, candidate):
            return None
        return info

    def touch(self, info: TokenInfo) -> None:
        """Note that ``info`` was used; written at most once per touch interval."""
        if self._submit_write is None:
            return
        now = self._clock()
        last = self._touched.get(info.id)
        if last is not None and now - last < self._touch_interval:
            return
        self._touched[info.id] = now
        when = utcnow()

        def write(conn: Connection) -> None:
            conn.execute(
                update(API_TOKENS).where(API_TOKENS.c.id == info.id).values(last_used_at=when)
            )

        self._submit_write(write).add_done_callback(_log_failure)


def _log_failure(future: Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("could not record a token's last use: %s", type(future.exception()).__name__)
