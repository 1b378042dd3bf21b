"""The forwarding frames: every command and outcome survives the trip, positionally.

The command kinds are found by looking at `scoreboard.core.commands`, not listed here:
a command class added there is round-tripped by these tests without a word, or fails
them until the wire carries it.
"""

from __future__ import annotations

import inspect
import types
from dataclasses import dataclass, fields, is_dataclass
from typing import Any, Union, get_args, get_origin, get_type_hints

import orjson
import pytest

from scoreboard.cluster.wire import (
    COMMANDS,
    WireError,
    decode_commands,
    decode_results,
    encode_commands,
    encode_results,
)
from scoreboard.core import commands, errors
from scoreboard.core.commands import (
    ActionResult,
    Command,
    ProofClaims,
    SetFrozen,
    SubmitAction,
    UserResult,
)
from scoreboard.writer.actor import StoreDown

KINDS = [cls for _, cls in inspect.getmembers(commands, inspect.isclass)
         if issubclass(cls, Command) and cls is not Command]


def sample(hint: Any, name: str, *, none: bool = False) -> Any:
    """A value of type `hint` for the field `name`; None for optional ones if `none`."""
    if get_origin(hint) in (Union, types.UnionType):
        options = [a for a in get_args(hint) if a is not type(None)]
        if none and len(options) < len(get_args(hint)):
            return None
        return sample(options[0], name)
    base = get_origin(hint) or hint
    if is_dataclass(base):
        return build(base)  # type: ignore[arg-type]
    values = {str: f"{name} value ✓", bool: True, int: -42, float: 1.5,
              dict: {"level": 3, "tags": ["a", "b"], "deep": {"x": None}}}
    assert base in values, f"no sample for {name}: {hint!r}; teach the wire and this test"
    return values[base]


def build(cls: type, *, none: bool = False) -> Any:
    hints = get_type_hints(cls)
    return cls(**{f.name: sample(hints[f.name], f.name, none=none) for f in fields(cls)})


def encoded(items: list[tuple[int, Command]]) -> bytes:
    frame, refused = encode_commands(items)
    assert frame is not None and refused == []
    return frame


def test_the_wire_knows_every_command_class() -> None:
    assert len(KINDS) >= 6 and set(COMMANDS.values()) == set(KINDS)


@pytest.mark.parametrize("cls", KINDS, ids=lambda cls: cls.__name__)
@pytest.mark.parametrize("none", [False, True], ids=["filled", "optional-null"])
def test_every_command_round_trips(cls: type[Command], none: bool) -> None:
    cmd = build(cls, none=none)
    items = [(7, cmd), (8, SetFrozen("u", "a", False, "r"))]
    assert decode_commands(encoded(items)) == items


def test_commands_round_trip() -> None:
    cmds = [
        SubmitAction("u1", "U One", "global", "COMPLETE_LEVEL", "c1"),
        SubmitAction("u2", None, "weekly", "WIN", "c2", {"level": 3},
                     ProofClaims("u2", "WIN", "j1", 1.5)),
        SubmitAction("u3", None, "weekly", "WIN", "c3", None, ProofClaims("u3", "W", "j", 9)),
    ]
    items = list(enumerate(cmds, 7))
    assert decode_commands(encoded(items)) == items


def wrong(value: Any) -> Any:
    """A value of another JSON type than `value`'s."""
    return 5 if isinstance(value, str) else "5"


@pytest.mark.parametrize(("cls", "field"), [
    (cls, f.name) for cls in KINDS for f in fields(cls)
], ids=lambda x: x if isinstance(x, str) else x.__name__)
def test_a_field_of_the_wrong_type_is_refused_alone(cls: type[Command], field: str) -> None:
    """Each field is checked on arrival: the command is refused, its neighbours decode."""
    good = orjson.loads(encoded([(1, build(cls)), (2, SetFrozen("u", "a", True, "r"))]))
    position = 1 + [f.name for f in fields(cls)].index(field)
    good[1][position] = wrong(good[1][position])
    out = decode_commands(orjson.dumps(good))
    assert isinstance(out[0][1], WireError) and field in str(out[0][1])
    assert out[1] == (2, SetFrozen("u", "a", True, "r"))


def test_a_bool_is_not_taken_for_a_number_nor_null_for_a_required_field() -> None:
    frame = orjson.dumps([1, ["AdjustScore", "u", "a", "global", True, "r", "c"],
                          2, ["SetFrozen", "u", None, True, "r"],
                          3, ["SubmitAction", "u", None, "g", "A", "c", None, ["s", "a", "j"]]])
    assert all(isinstance(cmd, WireError) for _, cmd in decode_commands(frame))


@dataclass(frozen=True, slots=True)
class Stray(Command):
    """A command this release's wire does not know."""

    note: str


def test_a_command_that_cannot_be_encoded_is_refused_alone() -> None:
    """An unknown kind, or a value JSON cannot carry: refused each by itself, and the
    others of the same frame go out."""
    fine = SetFrozen("u", "a", True, "r")
    huge = SubmitAction("u", None, "global", "A", "c", {"n": 2**70})
    frame, refused = encode_commands([(1, Stray("u", "x")), (2, fine), (3, huge), (4, fine)])
    assert frame is not None and decode_commands(frame) == [(2, fine), (4, fine)]
    assert [i for i, _ in refused] == [1, 3]
    assert "Stray" in str(refused[0][1]) and "SubmitAction" in str(refused[1][1])
    assert encode_commands([(5, Stray("u", "x"))])[0] is None  # nothing left to send


def test_a_bad_command_is_refused_alone_and_a_bad_frame_whole() -> None:
    good = encoded([(1, SetFrozen("u", "a", False, "r"))])
    frame = orjson.dumps([*orjson.loads(good), 2, ["Nope", 1], 3, ["SetFrozen"], 4, 17])
    out = decode_commands(frame)
    assert [i for i, _ in out] == [1, 2, 3, 4]
    assert isinstance(out[0][1], SetFrozen)
    assert all(isinstance(cmd, WireError) for _, cmd in out[1:])
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
