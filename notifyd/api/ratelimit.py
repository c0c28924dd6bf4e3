"""Token buckets, one per key (an API token, a client address), kept in this process's memory.

A bucket holds up to ``burst`` tokens and gains ``rate`` tokens a second; each request takes one.
Limits are per process: several ``notifyd serve`` processes each allow the full rate.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

Clock = Callable[[], float]
DEFAULT_MAX_KEYS = 10_000


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets by key; a limiter with ``burst`` or ``rate`` 0 allows everything."""

    def __init__(
        self,
        *,
        burst: int,
        rate: float,
        clock: Clock = time.monotonic,
        max_keys: int = DEFAULT_MAX_KEYS,
    ) -> None:
        self.burst = burst
        self.rate = rate
        self._clock = clock
        self._max_keys = max_keys
        # Least recently used first, so that memory stays bounded however many keys arrive.
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def __len__(self) -> int:
        """How many keys have a bucket."""
        return len(self._buckets)

    @property
    def enabled(self) -> bool:
        """Whether this limiter limits anything."""
        return self.burst > 0 and self.rate > 0

    def acquire(self, key: str) -> float | None:
        """Take one token for ``key``: None if allowed, else the seconds until one is available."""
        if not self.enabled:
            return None
        bucket = self._refilled(key)
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return None
        return (1 - bucket.tokens) / self.rate

    def refund(self, key: str) -> None:
        """Give back the token an allowed request took (it turned out not to count)."""
        if not self.enabled:
            return
        bucket = self._buckets.get(key)
        if bucket is not None:
            bucket.tokens = min(float(self.burst), bucket.tokens + 1)

    def _refilled(self, key: str) -> _Bucket:
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = _Bucket(tokens=float(self.burst), updated=now)
            self._buckets[key] = bucket
            while len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            elapsed = max(0.0, now - bucket.updated)
            bucket.tokens = min(float(self.burst), bucket.tokens + elapsed * self.rate)
            bucket.updated = now
        return bucket
