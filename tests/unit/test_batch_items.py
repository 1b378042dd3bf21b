"""Each batch item is checked exactly like the field-by-field checks of a single
action: the same command, or the same refusal with the same message."""

from __future__ import annotations

import itertools
from types import SimpleNamespace
from typing import Any

import pytest

from scoreboard.core.commands import SubmitAction
from scoreboard.core.names import visible
from scoreboard.edge import contract as c
from scoreboard.edge import validation as v
from scoreboard.edge.errors import BadRequest
from scoreboard.http.batch import BatchApi
from scoreboard.settings.model import load_settings

SETTINGS = load_settings({}, environ={})
MISSING = object()


def reference(item: Any) -> SubmitAction:
    """Every check in its order, one field at a time."""
    if not isinstance(item, dict):
        raise BadRequest("each action must be a JSON object")
    v.reject_unknown(item, c.BATCH_ITEM_FIELDS)
    user_id = v.string(item, "userId", required=True)
    action_type = v.string(item, "actionType", required=True, max_len=c.MAX_ACTION_TYPE)
    client_action_id = v.string(item, "clientActionId", required=True)
    board = v.board_name(v.string(item, "board", required=False, max_len=c.MAX_BOARD))
    name = v.string(item, "displayName", required=False, max_len=c.MAX_NAME)
    name = visible(name) or None if name is not None else None
    metadata = v.metadata(item, SETTINGS.limits.max_metadata_bytes)
    assert user_id is not None and action_type is not None and client_action_id is not None
    return SubmitAction(user_id, name, board, action_type, client_action_id, metadata)


def outcome(check: Any, item: Any) -> Any:
    try:
        return check(item)
    except BadRequest as exc:
        return ("refused", exc.message)


ODD: list[Any] = [MISSING, None, 5, True, 1.5, "", "x" * 65, "x" * 129, "nul\x00", "tab\tx",
                  "ok", "Ünï 🏆", "has space", ["ok"], {"a": 1},
                  "\u202eevil", "\u200b", " a\u2066b "]
FIELDS = ("userId", "actionType", "clientActionId", "board", "displayName")
GOOD = {"userId": "amy", "actionType": "COMPLETE_LEVEL", "clientActionId": "c1"}


def items() -> list[Any]:
    out: list[Any] = ["nope", [], None, {**GOOD, "proof": "a.b.c"}, {**GOOD, "zzz": 1}]
    for field, value in itertools.product(FIELDS, ODD):
        item = dict(GOOD)
        if value is MISSING:
            item.pop(field, None)
        else:
            item[field] = value
        out.append(item)
    for (f1, f2), (a, b) in itertools.product(itertools.combinations(FIELDS, 2),
                                              [(5, ""), ("", None), ("x" * 129, 5)]):
        out.append({**GOOD, f1: a, f2: b})
    out += [{**GOOD, "metadata": m} for m in ({"a": [1, {"b": None}]}, [], "x", {"n": "\x00"})]
    out += [{**GOOD, "board": "global"}, {**GOOD, "board": "Global"}, {**GOOD, "board": "b-1"}]
    return out


@pytest.mark.parametrize("order", ["forward", "backward"])
def test_items_are_checked_like_single_actions(order: str) -> None:
    api = BatchApi(SimpleNamespace(settings=SETTINGS, metrics=None), writer=None)  # type: ignore[arg-type]
    cases = items() if order == "forward" else items()[::-1]
    types: set[str] = set()
    boards: set[str] = set()  # shared, as within one batch: good values are remembered
    for item in cases:
        assert outcome(lambda i: api.command(i, types, boards), item) == \
            outcome(reference, item), item
