"""The retry policy: the default schedule, jitter, exponential growth, Retry-After clamping."""

from __future__ import annotations

import random

import pytest

from notifyd.config import DEFAULT_RETRY_SCHEDULE, RetryPolicySettings
from notifyd.tracking import RetryPolicy


def test_default_policy_is_eight_attempts_on_the_documented_schedule() -> None:
    policy = RetryPolicy.from_settings(RetryPolicySettings(jitter=0))
    assert policy.max_attempts == 8
    delays = [policy.next_delay(attempt) for attempt in range(1, 9)]
    assert delays == [5, 300, 1800, 7200, 18000, 36000, 36000, None]
    assert tuple(DEFAULT_RETRY_SCHEDULE) == (5, 300, 1800, 7200, 18000, 36000, 36000)


def test_jitter_stays_within_twenty_percent_and_varies() -> None:
    policy = RetryPolicy.from_settings(RetryPolicySettings(), random.Random(7))
    delays = [policy.delay_after(2) for _ in range(200)]
    assert all(240 <= d <= 360 for d in delays)
    assert len(set(delays)) > 100


def test_exponential_policy_grows_and_is_capped() -> None:
    policy = RetryPolicy.from_settings(
        RetryPolicySettings(max_attempts=10, schedule=[], base=2, factor=3, cap=100, jitter=0)
    )
    assert [policy.delay_after(n) for n in range(1, 6)] == [2, 6, 18, 54, 100]


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [(1, 300), (450, 450), (10_000, 600)],
)
def test_retry_after_is_clamped_between_one_and_two_times_the_schedule(
    retry_after: float, expected: float
) -> None:
    policy = RetryPolicy.from_settings(RetryPolicySettings())
    assert policy.delay_after(2, retry_after=retry_after) == expected


def test_the_last_schedule_entry_repeats_past_its_end() -> None:
    policy = RetryPolicy.from_settings(
        RetryPolicySettings(max_attempts=20, schedule=[1, 2], jitter=0)
    )
    assert policy.delay_after(10) == 2
