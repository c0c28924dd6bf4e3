"""Durations and points in time as operators type them; UTC time and ids come from tracking."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from notifyd.tracking.clock import UTCDateTime, new_id, utcnow

__all__ = ["UTCDateTime", "describe_ms", "new_id", "parse_duration", "parse_since", "utcnow"]

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
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:  # 0001-01-01T00:00:00+01:00 has no UTC form, and the store keeps UTC
        return parsed.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"invalid time {text!r}: out of range in UTC") from None


def describe_ms(ms: float, *, sep: str = " ") -> str:
    """A duration for people: ``850 ms``, ``2.4 s``, ``3 m 05 s``, ``2 h 10 m``, ``3 d 4 h``
    (``sep=""``: ``3m05s``, for narrow tables)."""
    if ms < 1000:
        return f"{ms:.0f}{sep}ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f}{sep}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}{sep}m{sep}{secs:02d}{sep}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}{sep}h{sep}{minutes:02d}{sep}m"
    days, hours = divmod(hours, 24)
    return f"{days}{sep}d{sep}{hours}{sep}h"
