"""Time and identifiers: UTC everywhere, and sortable ids that carry their creation time."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, DateTime, text
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
_PAIRS = [first + second for first in _CROCKFORD for second in _CROCKFORD]
_TIME_SHIFTS = (40, 30, 20, 10, 0)  # the first 5 pairs: 2 zero bits and the 48 bits of time
_random = random.Random()


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class StoreClock:
    """The process's clock, set by the store's: every process sharing a PostgreSQL store agrees
    on "now" for claims, leases and sweeps, whatever its machine's clock says.

    ``now(conn)`` is the database's time inside the caller's transaction (and re-measures the
    offset); calling the clock gives the process's time corrected by the last offset measured.
    On SQLite (one machine) both are the process's clock. ``local`` stands for the machine's
    clock (a test makes it run ahead or behind).
    """

    def __init__(self, local: Callable[[], datetime] | None = None) -> None:
        self.local = local or utcnow
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return self.local() + self.offset

    def now(self, conn: Connection) -> datetime:
        """ "Now" for a transaction on ``conn``: the database's clock on PostgreSQL."""
        if conn.dialect.name != "postgresql":
            return self()
        before = self.local()
        store: datetime = conn.execute(text("SELECT clock_timestamp()")).scalar_one()
        return self.observed(store, before, self.local())

    def observed(self, store: datetime, before: datetime, after: datetime) -> datetime:
        """Take ``store``, the database's time read between the local times ``before`` and
        ``after`` (by a statement that also did other work, say), as the new offset."""
        store = store.astimezone(UTC)
        self.offset = store - (before + (after - before) / 2)
        return store


# The milliseconds last put in an id, and their 10 digits: ids made in the same millisecond
# (a batch's runs) share them, so only the 80 random bits are encoded for each.
_last_time: tuple[int, str] = (-1, "")


# How far a stored id's time may be from its row's ``created_at``: since 0014 both come from the
# same moment; rows stored before may have taken their ids from a host's own clock and their
# times from the store's (see ``StoreClock``).
ID_CLOCK_SLACK = timedelta(minutes=5)
_MS_MAX = (1 << 48) - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NAIVE_EPOCH = datetime(1970, 1, 1)


def _milliseconds(moment: datetime) -> int:
    """``moment``'s milliseconds since the epoch (naive: UTC), floored, within 48 bits."""
    delta = moment - (_NAIVE_EPOCH if moment.tzinfo is None else _EPOCH)
    ms = (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000
    return min(max(ms, 0), _MS_MAX)


def new_id(prefix: str, at: datetime | None = None) -> str:
    """A ULID-style id: 48 bits of milliseconds then 80 random bits, so ids sort by creation.

    ``at``: the row's creation time, which the id then encodes (a row's ``created_at`` and its
    id agree, so a range of ids stands for a range of times: see ``id_floor``); by default the
    process's clock now.

    Ids must be unique, not secret (access is checked, not guessed), so the fast PRNG will do:
    a getrandom() system call per id was a measurable share of the accept path.
    """
    global _last_time
    pairs = _PAIRS
    ms = time.time_ns() // 1_000_000 if at is None else _milliseconds(at)
    last = _last_time
    if ms != last[0]:
        last = _last_time = (ms, "".join([pairs[(ms >> shift) & 1023] for shift in _TIME_SHIFTS]))
    bits = _random.getrandbits(80)
    # 26 Crockford base-32 digits, two at a time (a table of 1,024 pairs), spelled out: a loop
    # over the 128-bit value, or base64's encoder in pure Python, took twice as long.
    return (
        f"{prefix}_{last[1]}{pairs[bits >> 70]}{pairs[(bits >> 60) & 1023]}"
        f"{pairs[(bits >> 50) & 1023]}{pairs[(bits >> 40) & 1023]}{pairs[(bits >> 30) & 1023]}"
        f"{pairs[(bits >> 20) & 1023]}{pairs[(bits >> 10) & 1023]}{pairs[bits & 1023]}"
    )


def id_floor(prefix: str, moment: datetime) -> str:
    """The smallest id ``new_id(prefix, at=...)`` makes at ``moment``'s millisecond: ids made
    then or later sort at or above it, ids made earlier below (so an index on the id finds a
    range of creation times; ``moment`` beyond the ids' 48 bits is clamped)."""
    ms = _milliseconds(moment)
    return f"{prefix}_{''.join(_PAIRS[(ms >> shift) & 1023] for shift in _TIME_SHIFTS)}{'0' * 16}"


def id_floor_before(prefix: str, moment: datetime, slack: timedelta = ID_CLOCK_SLACK) -> str:
    """``id_floor`` of ``moment - slack``: every id of a row created at ``moment`` or later
    sorts at or above it (the earliest moment if that is before the calendar)."""
    try:
        earlier = moment - slack
    except OverflowError:
        earlier = datetime.min
    return id_floor(prefix, earlier)


def id_floor_after(prefix: str, moment: datetime, slack: timedelta = ID_CLOCK_SLACK) -> str:
    """``id_floor`` of ``moment + slack``: every id of a row created before ``moment`` sorts
    below it (the latest moment if that is past the calendar)."""
    try:
        later = moment + slack
    except OverflowError:
        later = datetime.max
    return id_floor(prefix, later)


# The text of recent UTC moments: a write binds the same moment many times (a notification's
# and its runs' created, updated and due times; a claim's "now" for every run it takes).
_TEXTS: dict[datetime, str] = {}
_TEXTS_KEPT = 4096


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

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        # SQLite keeps text: written here at once as SQLAlchemy's SQLite DATETIME writes it
        # (YYYY-MM-DD HH:MM:SS.ffffff), without its Python formatting of every value.
        texts = _TEXTS
        # The moment last written and its text, as one pair (one assignment, so two threads
        # binding at once never pair one moment with another's text): a row binds the same
        # moment several times, and comparing by identity is cheaper than hashing it.
        last: list[tuple[Any, str]] = [(object(), "")]

        def process(value: Any) -> str | None:
            seen = last[0]
            if value is seen[0]:
                return seen[1]
            if value.__class__ is datetime and value.tzinfo is UTC:
                # Already UTC (every time notifyd makes): drop the "+00:00" the text ends with.
                text = texts.get(value)
                if text is None:
                    if len(texts) >= _TEXTS_KEPT:
                        texts.clear()
                    text = texts[value] = value.isoformat(" ", "microseconds")[:-6]
                last[0] = (value, text)
                return text
            moment = self.process_bind_param(value, dialect)
            return None if moment is None else moment.isoformat(" ", "microseconds")

        return process

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime from the database, got {type(value).__name__}")
        result: datetime = value
        return result.replace(tzinfo=UTC) if result.tzinfo is None else result.astimezone(UTC)
