"""Engine images: restoring one and replaying the rest of the log gives the same engine
as replaying the whole log, through the stored form too; damage is refused."""

from __future__ import annotations

import dataclasses
import hashlib
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scoreboard.core.commands import Command, ProofClaims, SetFrozen, SubmitAction
from scoreboard.core.engine import Engine
from scoreboard.core.idempotency import command_fingerprint
from scoreboard.core.image import restore, take
from scoreboard.core.records import LogRecord
from scoreboard.storage.snapshots import FORMAT, SnapshotDamaged, decode, encode
from tests.unit.test_engine import ABUSE, RULES, T0, act, commands, run

Batch = tuple[float, list[LogRecord]]


def proof_action(user: str, n: int) -> SubmitAction:
    claims = ProofClaims(jti=f"j{n}", sub=user, act="BOSS_DEFEAT", exp=T0 + 5000)
    return act(user, f"p{n}", "BOSS_DEFEAT", proof=claims)


with_proofs = st.one_of(commands, st.builds(proof_action, st.sampled_from(["ann", "bob"]),
                                            st.integers(0, 6)))


def engine() -> Engine:
    return Engine(RULES, ("global", "weekly"), abuse=ABUSE)


def live_run(batches: list[list[Command]], gaps: list[float]) -> tuple[Engine, list[Batch]]:
    """As the writer runs: forget what lapsed, then decide and apply each batch."""
    live, log, now = engine(), [], T0
    for batch, gap in zip(batches, gaps, strict=False):
        now += gap
        live.expire(now)
        records: list[LogRecord] = []
        run(live, batch, now, records)
        log.append((now, records))
    return live, log


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(with_proofs, min_size=1, max_size=6), max_size=12),
       st.lists(st.floats(0, 4000), min_size=12, max_size=12), st.integers(0, 12))
def test_an_image_and_the_rest_of_the_log_rebuild_the_live_engine(
    batches: list[list[Command]], gaps: list[float], split: int
) -> None:
    head, tail = batches[:split], batches[split:]
    at_split, _ = live_run(head, gaps)
    live, log = live_run(batches, gaps)
    restored = engine()
    restore(restored, decode(encode(take(at_split), created_at=T0)))
    assert restored.state_digest() == at_split.state_digest()
    assert restored.memory_digest() == at_split.memory_digest()
    for now, records in log[len(head):]:
        restored.expire(now)
        for r in records:
            restored.apply(r)
    assert tail or restored.last_seq == live.last_seq
    assert restored.state_digest() == live.state_digest()
    assert restored.memory_digest() == live.memory_digest()
    for name, ranking in live.boards.items():
        assert restored.boards[name].top(100) == ranking.top(100)
        assert restored.boards[name].version == ranking.version


def test_a_restored_engine_decides_as_the_live_one() -> None:
    live, _ = live_run([[act("ann", "1"), act("bob", "1", "WIN_MATCH")],
                        [proof_action("ann", 1)]], [0.0, 1.0])
    restored = engine()
    restore(restored, decode(encode(take(live), created_at=T0)))
    again = [act("ann", "1"), act("ann", "1", "WIN_MATCH"), proof_action("ann", 1)]
    assert [type(o) for o in run(restored, list(again), T0 + 2)] == \
        [type(o) for o in run(live, list(again), T0 + 2)]


@pytest.mark.slow  # starts a Python process with another hash seed
def test_fingerprints_are_the_same_in_every_process() -> None:
    cmd = act("ann", "1", metadata={"b": 1, "a": [1, 2]})
    code = ("from tests.unit.test_engine import act; "
            "from scoreboard.core.idempotency import command_fingerprint as f; "
            "print(f(act('ann', '1', metadata={'a': [1, 2], 'b': 1})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={"PYTHONHASHSEED": "random"})
    assert int(out.stdout) == command_fingerprint(cmd)


def test_damage_is_refused_before_anything_is_restored() -> None:
    live, _ = live_run([[act("ann", "1")]], [0.0])
    good = encode(take(live), created_at=T0)
    assert good.format == FORMAT
    flipped = bytes([good.body[0] ^ 1]) + good.body[1:]
    cases = {
        "checksum": dataclasses.replace(good, body=flipped),
        "format": dataclasses.replace(good, format="pickle/9"),
        "of seq": dataclasses.replace(good, seq=good.seq + 1),
    }
    for what, bad in cases.items():
        with pytest.raises(SnapshotDamaged, match=what):
            decode(bad)
    body = b"not zlib"  # rightly summed, yet no image
    garbage = dataclasses.replace(good, body=body, checksum=hashlib.sha256(body).hexdigest())
    with pytest.raises(SnapshotDamaged, match="does not decode"):
        decode(garbage)


def test_an_image_that_does_not_hold_together_leaves_the_engine_untouched() -> None:
    live, _ = live_run([[act("ann", "1"), act("bob", "2")]], [0.0])
    image = take(live)
    board = image.boards[0]
    broken = dataclasses.replace(
        image, boards=[dataclasses.replace(board, users=[board.users[0]] * 2)])
    fresh = engine()
    with pytest.raises(ValueError):
        restore(fresh, broken)
    assert fresh.state_digest() == engine().state_digest()


def test_a_board_holds_its_ranked_users_in_order_then_the_frozen() -> None:
    live, _ = live_run([[act("ann", "1"), act("bob", "1", "WIN_MATCH"), act("cyd", "1"),
                         SetFrozen("bob", actor="adm", frozen=True, reason="r")]], [0.0])
    board = next(b for b in take(live).boards if b.name == "global")
    assert board.users[:board.ranked] == [u for u, _ in live.boards["global"].top(10)]
    assert board.users[board.ranked:] == ["bob"]
    swapped = dataclasses.replace(board, users=board.users[::-1])  # cyd left unranked
    for wrong in (swapped, dataclasses.replace(board, ranked=board.ranked + 1),
                  dataclasses.replace(board, ranked=-1),
                  dataclasses.replace(board, seqs=[-1] * 3),
                  dataclasses.replace(board, scores=[2**53] * 3)):
        fresh = engine()
        image = dataclasses.replace(take(live), boards=[wrong])
        with pytest.raises(ValueError):  # a stored one: out-of-range values fail to decode
            restore(fresh, decode(encode(image, 0.0)))
        assert fresh.state_digest() == engine().state_digest()
