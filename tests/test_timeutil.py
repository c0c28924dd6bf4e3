"""Durations as people read them, the same in the dashboard and the CLI."""

from __future__ import annotations

import pytest

from notifyd.timeutil import describe_ms


@pytest.mark.parametrize(
    ("ms", "spaced", "compact"),
    [
        (850, "850 ms", "850ms"),
        (2400, "2.4 s", "2.4s"),
        (185_000, "3 m 05 s", "3m05s"),
        (7_800_000, "2 h 10 m", "2h10m"),
        (273_600_000, "3 d 4 h", "3d4h"),
    ],
)
def test_durations_read_the_same_in_the_dashboard_and_the_cli(
    ms: float, spaced: str, compact: str
) -> None:
    assert describe_ms(ms) == spaced and describe_ms(ms, sep="") == compact
