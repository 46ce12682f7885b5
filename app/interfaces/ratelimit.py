"""A small token bucket per key, for the local endpoint's per-token request limit.

Why: the endpoint's token is in a 0600 file, but a process that has it (or a runaway UI loop) could flood the
estate index and the agent stack; a bucket caps the sustained rate and still lets the UI's bursts through
(autocomplete fires on each keystroke). Configured by ``CLOUDOPS_RATE_LIMIT`` as ``RATE/BURST``
(requests per second / bucket size), e.g. ``20/100``; ``off`` disables it.
"""

from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import dataclass

RATE_LIMIT_ENV = "CLOUDOPS_RATE_LIMIT"
DEFAULT_RATE = 50.0  # requests per second, sustained
DEFAULT_BURST = 200  # requests at once


@dataclass(frozen=True)
class RateLimit:
    rate: float
    burst: int


def rate_limit_from_env() -> RateLimit | None:
    """The limit from ``CLOUDOPS_RATE_LIMIT`` (``RATE/BURST``), the default when unset, None when ``off``.
    A malformed value raises ValueError: a security setting should not silently fall back."""
    raw = os.environ.get(RATE_LIMIT_ENV, "").strip()
    if not raw:
        return RateLimit(DEFAULT_RATE, DEFAULT_BURST)
    if raw.lower() == "off":
        return None
    rate_s, _, burst_s = raw.partition("/")
    try:
        rate = float(rate_s)
        burst = int(burst_s) if burst_s else max(1, math.ceil(rate))
    except ValueError:
        raise ValueError(f"{RATE_LIMIT_ENV} must be RATE/BURST, e.g. 20/100, or off") from None
    if not (0 < rate <= 100_000 and 1 <= burst <= 1_000_000):
        raise ValueError(f"{RATE_LIMIT_ENV}: rate must be in (0, 100000] and burst in [1, 1000000]")
    return RateLimit(rate, burst)


class TokenBuckets:
    """One bucket per key (the bearer token), refilled continuously at ``rate`` up to ``burst``."""

    def __init__(self, limit: RateLimit, clock=time.monotonic):
        self.limit, self.clock = limit, clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last refill time)
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """Take one token for ``key``: 0.0 when allowed, else the seconds until one is available."""
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.get(key, (float(self.limit.burst), now))
            tokens = min(float(self.limit.burst), tokens + (now - last) * self.limit.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.limit.rate
