"""The retry policies the settings describe, built once per process and passed down."""

from __future__ import annotations

import random

from notifyd.config import RetryPolicySettings, Settings
from notifyd.tracking.retry import RetryPolicies, RetryPolicy


def retry_policy(settings: RetryPolicySettings, rng: random.Random | None = None) -> RetryPolicy:
    """The policy one ``[retry]`` block describes (every field from the settings)."""
    return RetryPolicy(
        max_attempts=settings.max_attempts,
        schedule=tuple(settings.schedule),
        base=settings.base,
        factor=settings.factor,
        cap=settings.cap,
        jitter=settings.jitter,
        rng=rng or random.Random(),
    )


def retry_policies(settings: Settings, rng: random.Random | None = None) -> RetryPolicies:
    """The global ``[retry]`` policy and each ``[channels.<name>.retry]`` override."""
    rng = rng or random.Random()
    return RetryPolicies(
        default=retry_policy(settings.retry, rng),
        by_queue={
            name: retry_policy(override.retry, rng)
            for name, override in settings.channels.items()
            if override.retry is not None
        },
    )
