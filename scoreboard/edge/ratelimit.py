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
        self.enabled = per_minute > 0  # asked on every request: an attribute, not a property

    def hit(self, key: str, now: float) -> Verdict:
        """Take one token for `key` at monotonic time `now`."""
        buckets = self._buckets
        state = buckets.pop(key, None)
        full = self._full
        rate = self.rate
        if state is None:
            tokens = full
            if len(buckets) >= self.max_keys:
                del buckets[next(iter(buckets))]  # the least recently used
        else:
            tokens = state[0] + (now - state[1]) * rate
            if tokens > full:
                tokens = full
        if tokens >= 1.0:
            tokens -= 1.0
            buckets[key] = (tokens, now)
            return _verdict(Verdict, (True, self.limit, int(tokens),
                                      _ceil((full - tokens) / rate) if rate else 0, 0))
        buckets[key] = (tokens, now)
        return _verdict(Verdict, (False, self.limit, int(tokens),
                                  _ceil((full - tokens) / rate) if rate else 0,
                                  max(1, _ceil((1.0 - tokens) / rate))))


# A verdict built straight from its fields: a named tuple's own constructor is one
# more Python call on every limited request.
_verdict = tuple.__new__
_ceil = math.ceil
