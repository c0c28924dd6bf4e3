"""The retry policy: the one place that decides "try again, when" or "give up".

A ``RetryPolicy`` says how many attempts a run gets and how long to wait between them (a fixed
schedule, or exponential growth, with jitter). ``RetryPolicies`` holds a default policy and
per-queue overrides; it is built once (notifyd builds it from its settings) and handed to
everything that needs it: the dispatcher, when an attempt fails, and the admin operations, when
an operator's retry gives a run a fresh budget.

Without a policy a task gets one attempt (``RetryPolicy()``): a library task must opt in to
retries, because only its author knows whether running it twice is safe.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field

# Longest wait this module ever schedules, whatever a policy or a peer's Retry-After says.
MAX_DELAY_SECONDS = 7 * 86400.0


@dataclass(frozen=True)
class RetryPolicy:
    """How many attempts, and the delays between them (``schedule``, else exponential)."""

    max_attempts: int = 1
    schedule: tuple[float, ...] = ()
    base: float = 1.0
    factor: float = 2.0
    cap: float = 3600.0
    jitter: float = 0.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def scheduled_delay(self, attempt: int) -> float:
        """The planned delay (no jitter) after attempt number ``attempt`` (1-based) failed."""
        index = max(attempt - 1, 0)
        if self.schedule:
            return self.schedule[min(index, len(self.schedule) - 1)]
        try:
            return float(min(self.base * self.factor**index, self.cap))
        except OverflowError:  # factor**index beyond a float: far past the cap anyway
            return self.cap

    def delay_after(self, attempt: int, retry_after: float | None = None) -> float:
        """The delay after attempt ``attempt`` failed, whatever the attempt budget.

        A ``Retry-After`` the task reports is honoured, clamped between 1x and 2x the
        scheduled delay, so a peer can slow us down but neither stall nor hurry the run.
        """
        planned = self.scheduled_delay(attempt)
        if retry_after is not None and math.isfinite(retry_after):
            return min(max(retry_after, planned), 2 * planned)
        if self.jitter:
            planned *= 1 + self.rng.uniform(-self.jitter, self.jitter)
        return planned

    def next_delay(self, attempt: int, retry_after: float | None = None) -> float | None:
        """Seconds until the next attempt after ``attempt`` failed, or None when none is left."""
        return self.decide(charged=attempt, max_attempts=self.max_attempts, retry_after=retry_after)

    def decide(
        self,
        *,
        charged: int,
        max_attempts: int,
        retry_after: float | None = None,
        permanent: bool = False,
    ) -> float | None:
        """After a failed attempt: seconds until the next one, or None to give up.

        ``charged`` counts the attempts that used the budget (interrupted ones do not);
        ``max_attempts`` is the run's own budget, fixed when it was created or retried.
        """
        if permanent or charged >= max_attempts:
            return None
        try:
            delay = self.delay_after(charged, retry_after)
        except (ArithmeticError, ValueError, TypeError):
            delay = MAX_DELAY_SECONDS  # a broken policy still retries
        if not math.isfinite(delay):
            return MAX_DELAY_SECONDS
        return min(max(delay, 0.0), MAX_DELAY_SECONDS)


@dataclass(frozen=True)
class RetryPolicies:
    """The default policy and per-queue overrides, built once and passed where needed."""

    default: RetryPolicy = field(default_factory=RetryPolicy)
    by_queue: Mapping[str, RetryPolicy] = field(default_factory=dict)

    def for_queue(self, queue: str | None) -> RetryPolicy:
        """The policy of ``queue``: its own, else the default."""
        return self.by_queue.get(queue or "", self.default)

    def budget(self, queue: str | None) -> int:
        """How many attempts a new (or freshly retried) run of ``queue`` gets."""
        return self.for_queue(queue).max_attempts
