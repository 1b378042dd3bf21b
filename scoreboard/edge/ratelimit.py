"""Per-key token buckets (per user, per client IP) with a bounded number of keys."""

from __future__ import annotations

import math
from typing import NamedTuple


class Verdict(NamedTuple):
    allowed: bool
    limit: int
    remaining: int
    reset: int  # seconds until the bucket is full again
    retry_after: int  # seconds until one more request is allowed (0 when allowed)

    def headers(self) -> dict[str, str]:
        h = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset),
        }
        if not self.allowed:
            h["Retry-After"] = str(self.retry_after)
        return h


class RateLimiter:
    """`per_minute` requests per key, refilled continuously, bursts up to `per_minute`.

    At most `max_keys` buckets are kept; the least recently used goes first (a key that
    returns after eviction starts with a full bucket, which errs on the side of serving).
    The buckets are a plain dict in use order (a key is taken out and put back at the
    end on each hit), and a verdict is a named tuple: every request with a limit on
    comes through here, and both are cheaper than an OrderedDict and a frozen dataclass.
    """

    def __init__(self, per_minute: int, *, max_keys: int = 100_000) -> None:
        self.limit = per_minute
        self.rate = per_minute / 60.0
        self.max_keys = max_keys
        self._full = float(per_minute)
        self._buckets: dict[str, tuple[float, float]] = {}

    @property
    def enabled(self) -> bool:
        return self.limit > 0

    def hit(self, key: str, now: float) -> Verdict:
        """Take one token for `key` at monotonic time `now`."""
        buckets = self._buckets
        state = buckets.pop(key, None)
        if state is None:
            tokens = self._full
            if len(buckets) >= self.max_keys:
                del buckets[next(iter(buckets))]  # the least recently used
        else:
            tokens = min(self._full, state[0] + (now - state[1]) * self.rate)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        buckets[key] = (tokens, now)
        rate = self.rate
        reset = math.ceil((self.limit - tokens) / rate) if rate else 0
        retry = 0 if allowed else max(1, math.ceil((1.0 - tokens) / rate))
        return Verdict(allowed, self.limit, int(tokens), reset, retry)
