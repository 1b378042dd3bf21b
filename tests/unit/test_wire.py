"""The forwarding frames: every command and outcome survives the trip, positionally."""

from __future__ import annotations

import orjson
import pytest

from scoreboard.cluster.wire import (
    WireError,
    decode_commands,
    decode_results,
    encode_commands,
    encode_results,
)
from scoreboard.core import errors
from scoreboard.core.commands import (
    ActionResult,
    AdjustScore,
    ProofClaims,
    SetFrozen,
    SubmitAction,
    UserResult,
)
from scoreboard.writer.actor import StoreDown


def test_commands_round_trip() -> None:
    cmds = [
        SubmitAction("u1", "U One", "global", "COMPLETE_LEVEL", "c1"),
        SubmitAction("u2", None, "weekly", "WIN", "c2", {"level": 3},
                     ProofClaims("u2", "WIN", "j1", 1.5)),
        AdjustScore("u3", "admin", "global", -5, "typo", "a1"),
        SetFrozen("u4", "admin", True, "cheating"),
    ]
    items = list(enumerate(cmds, 7))
    assert decode_commands(encode_commands(items)) == items


def test_a_bad_command_is_refused_alone_and_a_bad_frame_whole() -> None:
    good = encode_commands([(1, SetFrozen("u", "a", False, "r"))])
    frame = orjson.dumps([*orjson.loads(good), 2, ["Nope", 1], 3, ["SetFrozen"]])
    out = decode_commands(frame)
    assert [i for i, _ in out] == [1, 2, 3]
    assert isinstance(out[0][1], SetFrozen)
    assert isinstance(out[1][1], WireError) and isinstance(out[2][1], WireError)
    for bad in (b"{", b'{"commands": []}', b"[1]", b'["x", []]'):
        with pytest.raises(WireError):
            decode_commands(bad)


def test_results_and_refusals_round_trip() -> None:
    action = ActionResult("u", "global", "WIN", 10, 30, 2, False, 5, 1.25)
    user = UserResult("u", True, False, None, 6, 2.5)
    out = decode_results(encode_results([
        (1, action), (2, user), (3, errors.QuotaExceeded("slow down", 3.0)),
        (4, StoreDown("gone", 2.0)), (5, errors.NotFound("who")),
    ]))
    assert out[:2] == [(1, action), (2, user)]
    quota, down, missing = (r for _, r in out[2:])
    assert isinstance(quota, errors.QuotaExceeded) and quota.retry_after == 3.0
    assert isinstance(down, StoreDown) and down.message == "gone" and down.retry_after == 2.0
    assert isinstance(missing, errors.NotFound) and missing.message == "who"
    with pytest.raises(WireError):
        decode_results(b'[1, ["z"]]')
