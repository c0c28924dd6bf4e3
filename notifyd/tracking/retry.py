"""The retry policy: when the next attempt of a failed run is due."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from notifyd.config import RetryPolicySettings


@dataclass(frozen=True)
class RetryPolicy:
    """Delays between attempts, from a fixed schedule or exponential growth, with jitter."""

    max_attempts: int = 1
    schedule: tuple[float, ...] = ()
    base: float = 5.0
    factor: float = 2.0
    cap: float = 36000.0
    jitter: float = 0.2
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    @classmethod
    def from_settings(
        cls, settings: RetryPolicySettings, rng: random.Random | None = None
    ) -> RetryPolicy:
        """Build the policy a settings block describes."""
        return cls(
            max_attempts=settings.max_attempts,
            schedule=tuple(settings.schedule),
            base=settings.base,
            factor=settings.factor,
            cap=settings.cap,
            jitter=settings.jitter,
            rng=rng or random.Random(),
        )

    def scheduled_delay(self, attempt: int) -> float:
        """The planned delay (no jitter) after attempt number ``attempt`` (1-based) failed."""
        index = max(attempt - 1, 0)
        if self.schedule:
            return self.schedule[min(index, len(self.schedule) - 1)]
        try:
            return float(min(self.base * self.factor**index, self.cap))
        except OverflowError:  # factor**index beyond a float: far past the cap anyway
            return self.cap

    def next_delay(self, attempt: int, retry_after: float | None = None) -> float | None:
        """Seconds until the next attempt after ``attempt`` failed, or None when none is left.

        A ``Retry-After`` the channel reports is honoured, clamped between 1x and 2x the
        scheduled delay, so a peer can slow us down but neither stall nor hurry the run.
        """
        if attempt >= self.max_attempts:
            return None
        return self.delay_after(attempt, retry_after)

    def delay_after(self, attempt: int, retry_after: float | None = None) -> float:
        """The delay after attempt ``attempt`` failed, whatever the attempt budget."""
        planned = self.scheduled_delay(attempt)
        if retry_after is not None:
            return min(max(retry_after, planned), 2 * planned)
        if self.jitter:
            planned *= 1 + self.rng.uniform(-self.jitter, self.jitter)
        return planned
