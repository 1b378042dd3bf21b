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


def test_actions_fingerprints_are_the_same_by_command_and_by_record() -> None:
    from scoreboard.core.commands import SubmitAction
    from scoreboard.core.records import ActionRecord

    for metadata in (None, {}, {"level": 3}):
        for _ in range(2):  # digested, then kept
            cmd = SubmitAction("amy", None, "global", "WIN", "c1", metadata)
            rec = ActionRecord(1, 0.0, "global", "amy", None, 10, 0, 10, "c1", "WIN", metadata)
            assert idempotency.command_fingerprint(cmd) == idempotency.record_fingerprint(
                rec) == _digest(Kind.ACTION, "global", "WIN", metadata or None)
    for n in range(5000):  # bounded too
        idempotency.command_fingerprint(SubmitAction("amy", None, "global", f"A{n}", "c"))
    assert len(idempotency._PLAIN_ACTIONS) <= 4096
