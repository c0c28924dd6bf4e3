"""Idempotency-Key: the same key and body replay the first answer; a different body is refused.

Keys are kept 24 h per caller. The record is written in the same transaction as the
notification, so a key is either wholly used or not at all. A second request with a key whose
first request is still being committed in this process gets 409 with Retry-After; across
processes the primary key decides, and the loser replays the winner's answer.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, select

from notifyd.db import read_session
from notifyd.errors import InProgress, InvalidInput
from notifyd.models import IdempotencyRecord

RECORDS = IdempotencyRecord.__table__  # type: ignore[attr-defined]
KEY_TTL = timedelta(hours=24)
MAX_KEY_LENGTH = 255
IN_PROGRESS_RETRY_AFTER = 1.0


def request_hash(body: dict[str, Any]) -> str:
    """A stable fingerprint of a request body."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Replay:
    """The first answer given for this key."""

    notification_id: str
    response: dict[str, Any]


class IdempotencyKeys:
    """Looks keys up and guards the ones in flight in this process."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._in_flight: set[tuple[str, str]] = set()

    @staticmethod
    def check_key(key: str) -> None:
        """Refuse an empty or over-long key."""
        if not key or len(key) > MAX_KEY_LENGTH:
            raise InvalidInput(
                f"Idempotency-Key: must be 1 to {MAX_KEY_LENGTH} characters, got {len(key)}"
            )

    @contextmanager
    def claim(self, caller: str, key: str) -> Iterator[None]:
        """Hold the key while its request is processed here; a concurrent twin gets 409."""
        slot = (caller, key)
        if slot in self._in_flight:
            raise InProgress(
                "a request with this Idempotency-Key is still being processed; retry shortly",
                retry_after=IN_PROGRESS_RETRY_AFTER,
            )
        self._in_flight.add(slot)
        try:
            yield
        finally:
            self._in_flight.discard(slot)

    def lookup(self, caller: str, key: str, fingerprint: str, now: datetime) -> Replay | None:
        """The stored answer for this key, if it is live; a different body is refused (422)."""
        with read_session(self.engine) as session:
            row = session.execute(
                select(RECORDS).where(RECORDS.c.caller == caller, RECORDS.c.key == key)
            ).one_or_none()
        if row is None or row.expires_at <= now:
            return None
        if row.request_hash != fingerprint:
            raise InvalidInput(
                "Idempotency-Key: this key was already used with a different request body"
            )
        return Replay(notification_id=row.notification_id, response=row.response)


def record_writer(
    *,
    caller: str,
    key: str,
    fingerprint: str,
    notification_id: str,
    response: dict[str, Any],
    now: datetime,
) -> Callable[[Connection], None]:
    """A write, for the notification's transaction, that stores the key (replacing an expired one)."""

    def write(conn: Connection) -> None:
        conn.execute(
            delete(RECORDS).where(
                RECORDS.c.caller == caller, RECORDS.c.key == key, RECORDS.c.expires_at <= now
            )
        )
        conn.execute(
            insert(RECORDS),
            {
                "caller": caller,
                "key": key,
                "request_hash": fingerprint,
                "notification_id": notification_id,
                "response": response,
                "created_at": now,
                "expires_at": now + KEY_TTL,
            },
        )

    return write
