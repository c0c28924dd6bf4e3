"""Ids: 26 Crockford base-32 digits of 48 bits of milliseconds then 80 random bits."""

from __future__ import annotations

import base64
import re
import time

import pytest

from notifyd.tracking import clock
from notifyd.tracking.clock import new_id

CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"


def _reference(value: int) -> str:
    # The encoding as first written: base64's base-32 over 17 bytes, in Crockford's alphabet.
    table = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", CROCKFORD.encode())
    return base64.b32encode((value << 6).to_bytes(17, "big"))[:26].translate(table).decode()


def _decode(digits: str) -> int:
    return int("".join(format(CROCKFORD.index(c), "05b") for c in digits), 2)


def test_ids_carry_their_time_and_sort_by_it() -> None:
    before = time.time_ns() // 1_000_000
    ids = [new_id("run") for _ in range(200)]
    after = time.time_ns() // 1_000_000
    assert all(re.fullmatch(r"run_[0-9a-hjkmnp-tv-z]{26}", i) for i in ids)
    stamps = [_decode(i[4:]) >> 80 for i in ids]
    assert all(before <= stamp <= after for stamp in stamps)
    assert stamps == sorted(stamps) and len(set(ids)) == len(ids)


def test_the_digits_are_the_same_as_the_first_encoding(monkeypatch: pytest.MonkeyPatch) -> None:
    cases = [
        (0, 0),
        (1, 1),
        ((1 << 48) - 1, (1 << 80) - 1),
        (0x0123456789AB, 0xCDEF0123456789ABCDEF),
        (1_796_000_000_000, 0x8000_0000_0000_0000_0001),
    ]
    for ms, bits in cases:
        monkeypatch.setattr(time, "time_ns", lambda ms=ms: ms * 1_000_000 + 999_999)
        monkeypatch.setattr(clock._random, "getrandbits", lambda k, bits=bits: bits)
        assert new_id("x") == "x_" + _reference(ms << 80 | bits)
        # The same millisecond again (its digits kept), with other random bits.
        monkeypatch.setattr(clock._random, "getrandbits", lambda k: 12345)
        assert new_id("y") == "y_" + _reference(ms << 80 | 12345)


def test_an_id_made_at_a_moment_encodes_it_and_sorts_within_its_floors() -> None:
    from datetime import UTC, datetime, timedelta

    from notifyd.tracking.clock import id_floor, id_floor_after, id_floor_before

    moment = datetime(2026, 12, 8, 4, 10, 0, 123_456, tzinfo=UTC)
    made = [new_id("run", at=moment) for _ in range(50)]
    ms = int(moment.timestamp() * 1000)
    assert all(_decode(i[4:]) >> 80 == ms for i in made)
    floor, next_floor = id_floor("run", moment), id_floor("run", moment + timedelta(milliseconds=1))
    assert all(floor <= i < next_floor for i in made)
    assert new_id("run", at=moment - timedelta(milliseconds=1)) < floor
    # A naive moment is UTC, as stored times are.
    assert id_floor("run", moment.replace(tzinfo=None)) == floor
    # The slack widens the range both ways; moments off the calendar or the 48 bits clamp.
    assert id_floor_before("run", moment) < floor < id_floor_after("run", moment)
    assert id_floor_before("run", datetime.min.replace(tzinfo=UTC)) == "run_" + "0" * 26
    assert id_floor_after("run", datetime.max.replace(tzinfo=UTC)) > new_id("run")
    assert id_floor("run", datetime(1969, 1, 1, tzinfo=UTC)) == "run_" + "0" * 26


def test_sqlite_stores_times_as_sqlalchemy_would() -> None:
    from datetime import UTC, datetime, timedelta, timezone

    from sqlalchemy import DateTime
    from sqlalchemy.dialects import sqlite

    dialect = sqlite.dialect()
    ours = clock.UTCDateTime().bind_processor(dialect)
    theirs = DateTime().dialect_impl(dialect).bind_processor(dialect)
    assert ours is not None and theirs is not None
    for moment in (
        datetime(2026, 12, 1, 23, 20, tzinfo=UTC),
        datetime(2026, 12, 1, 23, 20, 5, 123, tzinfo=timezone(timedelta(hours=-7))),
        datetime(1, 1, 1, 0, 0, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999999),
    ):
        naive = moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment
        assert ours(moment) == theirs(naive)
        assert ours(moment) == theirs(naive)  # the same moment again (its text kept)
        if moment.tzinfo is not None and 1 < moment.year < 9999:
            elsewhere = moment.astimezone(timezone(timedelta(hours=3)))  # equal, another zone
            assert ours(elsewhere) == theirs(naive)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    for n in range(clock._TEXTS_KEPT + 10):  # more moments than are kept: still each its own
        moment = base + timedelta(microseconds=n)
        assert ours(moment) == theirs(moment.replace(tzinfo=None))
    assert ours(None) is None


def test_a_moment_bound_again_or_in_turn_with_others_keeps_its_own_text() -> None:
    from datetime import UTC, datetime, timedelta

    from sqlalchemy.dialects import sqlite

    process = clock.UTCDateTime().bind_processor(sqlite.dialect())
    assert process is not None
    assert process(None) is None  # before any moment, and after one
    first = datetime(2026, 12, 7, 8, 30, 0, 1, tzinfo=UTC)
    second = first + timedelta(microseconds=1)
    for value, text in [
        (first, "2026-12-07 08:30:00.000001"),
        (first, "2026-12-07 08:30:00.000001"),
        (None, None),
        (second, "2026-12-07 08:30:00.000002"),
        (first, "2026-12-07 08:30:00.000001"),
        (first.replace(tzinfo=None), "2026-12-07 08:30:00.000001"),
        (second, "2026-12-07 08:30:00.000002"),
    ]:
        assert process(value) == text
