"""Time and identifiers: UTC everywhere, and sortable ids that carry their creation time."""

from __future__ import annotations

import base64
import math
import random
import time
from datetime import UTC, datetime, timedelta
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


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    """Parse ``90s``, ``15m``, ``1h``, ``30d`` or ``2w`` into a timedelta."""
    raw = text.strip().lower()
    if len(raw) < 2 or raw[-1] not in _UNITS:
        raise ValueError(f"invalid duration {text!r}: use a number and s, m, h, d or w, e.g. 30d")
    try:
        amount = float(raw[:-1])
    except ValueError:
        raise ValueError(f"invalid duration {text!r}: use a number and s, m, h, d or w") from None
    if not math.isfinite(amount) or amount < 0:
        raise ValueError(f"invalid duration {text!r}: must be a finite, non-negative number")
    try:
        return timedelta(seconds=amount * _UNITS[raw[-1]])
    except OverflowError:
        raise ValueError(f"invalid duration {text!r}: too long") from None


def parse_since(text: str, *, now: datetime | None = None) -> datetime:
    """A point in time: an ISO 8601 timestamp or a duration ago (``1h`` = one hour ago)."""
    try:
        ago = parse_duration(text)
    except ValueError:
        pass
    else:
        try:
            return (now or utcnow()) - ago
        except OverflowError:
            raise ValueError(f"invalid time {text!r}: before the year 1") from None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"invalid time {text!r}: use an ISO 8601 timestamp or a duration such as 1h or 7d"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


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
