"""A token bucket per API token: how many events each may emit per second.

The buckets live in this process's memory: each API process counts on its own, so N
processes behind one balancer admit up to N times the rate, and a restart refills them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

MAX_BUCKETS = 10_000


class EmitRateLimiter:
    """``rate`` events per second per key, with a burst of one second's worth (at least one
    event). A call of more events than the burst is admitted once the bucket is full, and
    its excess is paid back before the next is admitted, so the average stays at ``rate``."""

    def __init__(self, rate: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = max(1.0, rate)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def admit(self, key: str, count: int) -> int:
        """Take ``count`` events from ``key``'s bucket: 0 when admitted; otherwise nothing is
        taken and the answer is the whole seconds to wait before the call would be."""
        now = self._clock()
        level, at = self._buckets.get(key, (self.burst, now))
        level = min(self.burst, level + (now - at) * self.rate)
        needed = min(float(count), self.burst)
        if level < needed:
            self._buckets[key] = (level, now)
            return max(1, math.ceil((needed - level) / self.rate))
        if len(self._buckets) >= MAX_BUCKETS and key not in self._buckets:
            self._forget_full(now)
        self._buckets[key] = (level - count, now)
        return 0

    def _forget_full(self, now: float) -> None:
        """Drop the buckets that have refilled: forgetting them changes nothing."""
        for key, (level, at) in list(self._buckets.items()):
            if level + (now - at) * self.rate >= self.burst:
                del self._buckets[key]
