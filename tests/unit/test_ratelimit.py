"""The per-key token buckets (`scoreboard.edge.ratelimit`): bursts up to the limit,
continuous refill, the verdict's numbers and headers, and least-recently-used eviction
beyond `max_keys` (an evicted key starts again with a full bucket)."""

from __future__ import annotations

from scoreboard.edge.ratelimit import RateLimiter, Verdict


def test_a_burst_up_to_the_limit_then_refusals_with_when_to_retry() -> None:
    limiter = RateLimiter(60)  # one token a second
    verdicts = [limiter.hit("a", 100.0) for _ in range(61)]
    assert all(v.allowed for v in verdicts[:60]) and not verdicts[60].allowed
    assert [v.remaining for v in verdicts[:3]] == [59, 58, 57]
    assert verdicts[0] == Verdict(True, 60, 59, 1, 0)
    refused = verdicts[60]
    assert (refused.remaining, refused.reset, refused.retry_after) == (0, 60, 1)
    assert refused.headers() == {"RateLimit-Limit": "60", "RateLimit-Remaining": "0",
                                 "RateLimit-Reset": "60", "Retry-After": "1"}
    assert "Retry-After" not in verdicts[0].headers()
    assert limiter.hit("b", 100.0).allowed  # another key has its own bucket


def test_tokens_come_back_with_time_up_to_a_full_bucket() -> None:
    limiter = RateLimiter(60)
    for _ in range(60):
        limiter.hit("a", 0.0)
    assert not limiter.hit("a", 0.5).allowed
    again = limiter.hit("a", 1.5)
    assert again.allowed and again.remaining == 0
    full = limiter.hit("a", 10_000.0)  # never more than the limit
    assert full.remaining == 59 and full.reset == 1


def test_the_least_recently_used_key_goes_first() -> None:
    limiter = RateLimiter(2, max_keys=2)
    limiter.hit("a", 0.0)
    limiter.hit("a", 0.0)  # a's bucket is empty
    limiter.hit("b", 0.0)
    limiter.hit("a", 0.0)  # a used last: b is the least recently used
    limiter.hit("c", 0.0)  # evicts b
    assert not limiter.hit("a", 0.0).allowed  # a was kept, still empty
    assert limiter.hit("b", 0.0).remaining == 1  # b starts again full (evicting c)
    assert limiter.hit("c", 0.0).remaining == 1


def test_off_at_zero() -> None:
    assert not RateLimiter(0).enabled and RateLimiter(1).enabled
