"""Idempotency fingerprints: kept ones are the very digests, and never mix payloads."""

from __future__ import annotations

from scoreboard.core import idempotency
from scoreboard.core.idempotency import _digest, fingerprint
from scoreboard.core.records import Kind


def test_a_kept_fingerprint_is_the_digest_of_its_payload() -> None:
    for _ in range(2):  # digested, then kept
        assert fingerprint(Kind.ACTION, "global", "WIN", None) == _digest(
            Kind.ACTION, "global", "WIN", None)
        assert fingerprint(Kind.ACTION, "global", "WIN", {}) == _digest(
            Kind.ACTION, "global", "WIN", None)
    assert fingerprint(Kind.ACTION, "global", "WIN", {"level": 3}) == _digest(
        Kind.ACTION, "global", "WIN", {"level": 3})


def test_payloads_that_differ_keep_different_fingerprints() -> None:
    seen = {
        fingerprint(Kind.ACTION, "global", "WIN", None),
        fingerprint(Kind.ACTION, "weekly", "WIN", None),
        fingerprint(Kind.ACTION, "global", "LOSE", None),
        fingerprint(Kind.ADJUST, "global", 1, None),
        fingerprint(Kind.ADJUST, "global", True, None),  # equal to 1 as a key, not as JSON
        fingerprint(Kind.ADJUST, "global", 1, {"reason": "x"}),
    }
    assert len(seen) == 6


def test_the_kept_fingerprints_are_bounded() -> None:
    kept = idempotency._plain_fingerprint
    assert kept.cache_info().maxsize is not None
    for n in range(kept.cache_info().maxsize + 10):
        fingerprint(Kind.ACTION, "global", f"A{n}", None)
    assert kept.cache_info().currsize <= kept.cache_info().maxsize
