"""Time and identifiers: UTC everywhere, and sortable ids that carry their creation time."""

from __future__ import annotations

import base64
import random
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
_TO_CROCKFORD = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", _CROCKFORD.encode())
_random = random.Random()


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def new_id(prefix: str) -> str:
    """A ULID-style id: 48 bits of milliseconds then 80 random bits, so ids sort by creation.

    Ids must be unique, not secret (access is checked, not guessed), so the fast PRNG will do:
    a getrandom() system call per id was a measurable share of the accept path.
    """
    value = (time.time_ns() // 1_000_000) << 80 | _random.getrandbits(80)
    # As 26 Crockford base-32 digits: shifted to fill 17 bytes exactly, so the digits line up.
    digits = base64.b32encode((value << 6).to_bytes(17, "big"))[:26]
    return f"{prefix}_{digits.translate(_TO_CROCKFORD).decode()}"


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC (the same on SQLite and PostgreSQL) and returns aware UTC."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected datetime, got {type(value).__name__}")
        moment: datetime = value
        return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime from the database, got {type(value).__name__}")
        result: datetime = value
        return result.replace(tzinfo=UTC) if result.tzinfo is None else result.astimezone(UTC)
