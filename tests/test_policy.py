"""The retry policy: the default schedule, jitter, exponential growth, Retry-After clamping."""

from __future__ import annotations

import random

import pytest

from notifyd.config import DEFAULT_RETRY_SCHEDULE, ChannelSettings, RetryPolicySettings, Settings
from notifyd.policy import retry_policies, retry_policy
from notifyd.tracking.retry import MAX_DELAY_SECONDS, RetryPolicy


def test_default_policy_is_eight_attempts_on_the_documented_schedule() -> None:
    policy = retry_policy(RetryPolicySettings(jitter=0))
    assert policy.max_attempts == 8
    delays = [policy.next_delay(attempt) for attempt in range(1, 9)]
    assert delays == [5, 300, 1800, 7200, 18000, 36000, 36000, None]
    assert tuple(DEFAULT_RETRY_SCHEDULE) == (5, 300, 1800, 7200, 18000, 36000, 36000)


def test_jitter_stays_within_twenty_percent_and_varies() -> None:
    policy = retry_policy(RetryPolicySettings(), random.Random(7))
    delays = [policy.delay_after(2) for _ in range(200)]
    assert all(240 <= d <= 360 for d in delays)
    assert len(set(delays)) > 100


def test_exponential_policy_grows_and_is_capped() -> None:
    policy = retry_policy(
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
    policy = retry_policy(RetryPolicySettings())
    assert policy.delay_after(2, retry_after=retry_after) == expected


def test_the_last_schedule_entry_repeats_past_its_end() -> None:
    policy = retry_policy(RetryPolicySettings(max_attempts=20, schedule=[1, 2], jitter=0))
    assert policy.delay_after(10) == 2


def test_the_policy_alone_decides_give_up_or_when() -> None:
    policy = RetryPolicy(max_attempts=3, schedule=(10, 60))
    assert policy.decide(charged=1, max_attempts=3) == 10
    assert policy.decide(charged=3, max_attempts=3) is None
    # A run's own budget wins over the policy's (an operator's retry widened it).
    assert policy.decide(charged=3, max_attempts=6) == 60
    assert policy.decide(charged=1, max_attempts=3, permanent=True) is None
    assert policy.decide(charged=1, max_attempts=3, retry_after=float("nan")) == 10
    assert policy.decide(charged=1, max_attempts=3, retry_after=1e12) == 20
    broken = RetryPolicy(max_attempts=3, schedule=(float("inf"),))
    assert broken.decide(charged=1, max_attempts=3) == MAX_DELAY_SECONDS


def test_a_library_task_gets_one_attempt_unless_it_asks_for_more() -> None:
    assert RetryPolicy().decide(charged=1, max_attempts=RetryPolicy().max_attempts) is None


def test_settings_build_one_policy_per_channel_and_a_default() -> None:
    settings = Settings(
        retry=RetryPolicySettings(max_attempts=2, schedule=[5], jitter=0),
        channels={
            "email": ChannelSettings(
                retry=RetryPolicySettings(max_attempts=4, schedule=[1, 2], jitter=0)
            )
        },
    )
    policies = retry_policies(settings)
    assert policies.budget("email") == 4
    assert policies.for_queue("email").delay_after(2) == 2
    assert policies.budget("webhook") == 2 and policies.budget(None) == 2
    assert policies.for_queue(None).delay_after(1) == 5
