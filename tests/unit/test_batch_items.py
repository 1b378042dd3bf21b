"""Each batch item is checked by the same field declarations as a single action: the
same values are refused with the same message (prefixed with the item's place), and
a good item becomes the command a single action would."""

from __future__ import annotations

import itertools
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from msgspec.structs import astuple

from scoreboard.core.commands import SubmitAction
from scoreboard.core.names import visible
from scoreboard.edge import validation as v
from scoreboard.edge.bodies import ActionRequest, BatchRequest
from scoreboard.edge.errors import BadRequest
from scoreboard.http.batch import BATCH_BODY, BatchApi
from scoreboard.http.public import ACTION_BODY
from scoreboard.settings.model import load_settings

SETTINGS = load_settings({}, environ={})
MISSING = object()
API = BatchApi(SimpleNamespace(settings=SETTINGS, metrics=None), writer=None)  # type: ignore[arg-type]


def batch(item: Any) -> Any:
    """The second action of a batch whose first is good, as the handler reads it."""
    try:
        body = BATCH_BODY.read(orjson.dumps({"actions": [GOOD, item]}))
        return [API.command(action, i) for i, action in enumerate(body.actions)][1]
    except BadRequest as exc:
        return ("refused", exc.message)


def single(item: dict[str, Any]) -> Any:
    """The same fields as a single action's body."""
    fields = {k: v for k, v in item.items() if k not in ("userId", "displayName")}
    try:
        body = ACTION_BODY.read(orjson.dumps(fields))
        metadata = v.metadata(body.metadata, SETTINGS.limits.max_metadata_bytes)
    except BadRequest as exc:
        return ("refused", exc.message)
    return SubmitAction(item["userId"], item.get("displayName"), body.board or "global",
                        body.action_type, body.client_action_id, metadata)


ODD: list[Any] = [MISSING, None, 5, True, 1.5, "", "x" * 65, "x" * 129, "nul\x00", "tab\tx",
                  "del\x7f",
                  "ok", "Ünï 🏆", "has space", ["ok"], {"a": 1}]
SHARED = ("actionType", "clientActionId", "board")
GOOD = {"userId": "amy", "actionType": "COMPLETE_LEVEL", "clientActionId": "c1"}


def variants(fields: tuple[str, ...]) -> list[dict[str, Any]]:
    out = []
    for field, value in itertools.product(fields, ODD):
        item = dict(GOOD)
        if value is MISSING:
            item.pop(field, None)
        else:
            item[field] = value
        out.append(item)
    out += [{**GOOD, "metadata": m} for m in ({"a": [1, {"b": None}]}, [], "x", {"n": "\x00"},
                                               {"a": {"b": {"c": {"d": {"e": 1}}}}})]
    out += [{**GOOD, "board": "global"}, {**GOOD, "board": "Global"}, {**GOOD, "board": "b-1"}]
    return out


@pytest.mark.parametrize("item", variants(SHARED), ids=repr)
def test_items_are_checked_like_single_actions(item: dict[str, Any]) -> None:
    expected = single(item)
    if isinstance(expected, tuple):
        expected = ("refused", f"actions[1].{expected[1]}")
    assert batch(item) == expected


@pytest.mark.parametrize("item", [i for i in variants(("userId", "displayName"))
                                  if i != GOOD and set(i) <= {*GOOD, "displayName"}],
                         ids=repr)
def test_batch_only_fields_name_their_place(item: dict[str, Any]) -> None:
    got = batch(item)
    ok = isinstance(got, SubmitAction)
    value = item.get("userId", MISSING), item.get("displayName")

    def good(s: Any, n: int) -> bool:  # isprintable: no control character among ODD's
        return isinstance(s, str) and 0 < len(s) <= n and s.isprintable()

    assert ok == (good(value[0], 128) and (value[1] is None or good(value[1], 64))), got
    if not ok:
        field = "userId" if not good(value[0], 128) else "displayName"
        assert got[1].startswith(f"actions[1].{field}: "), got


@pytest.mark.parametrize("name", ["\u202eevil", "\u200b", " a\u2066b ", "Ünï 🏆"], ids=repr)
def test_batch_names_lose_bidi_and_zero_width_characters(name: str) -> None:
    """As a token's name claim: what reorders or hides text goes, and an empty rest is
    no name."""
    got = batch({**GOOD, "displayName": name})
    assert isinstance(got, SubmitAction)
    assert got.display_name == (visible(name) or None)
    assert got.display_name in ("evil", None, "ab", "Ünï 🏆")


@pytest.mark.parametrize("body", [{"actions": []}, {"actions": "x"}, {"actions": [GOOD], "x": 1},
                                  {}, [], {"actions": [GOOD, "nope"]}])
def test_malformed_batches_are_refused_whole(body: Any) -> None:
    with pytest.raises(BadRequest):
        BATCH_BODY.read(orjson.dumps(body))


@pytest.mark.parametrize("text", ["ok", "Ünï 🏆", "tab\tx", "del\x7f", "nl\n", "a\\b", "q\"x"])
def test_a_batch_is_read_as_the_declared_structs_read_it(text: str) -> None:
    """Without an escape or a DEL the printable pattern is left out of the decoding: the
    batch reads exactly as the declared Structs read it, or is refused as they refuse
    it, whatever its text holds."""
    body = orjson.dumps({"actions": [GOOD, {**GOOD, "userId": text, "displayName": text,
                                            "clientActionId": text}]})
    declared = v.BodyReader(BatchRequest)
    try:
        expected: Any = [astuple(a) for a in declared.read(body).actions]
    except BadRequest as exc:
        expected = ("refused", exc.message)
    try:
        got: Any = [astuple(a) for a in BATCH_BODY.read(body).actions]
    except BadRequest as exc:
        got = ("refused", exc.message)
    assert got == expected


@pytest.mark.parametrize("extra", [
    {}, {"board": "global"}, {"displayName": "Amy", "value": 3},
    {"metadata": {"a": {"b": [1, {"c": 2}]}}}, {"metadata": {}}, {"board": None},
])
def test_a_batchs_keys_are_counted_as_item_by_item(extra: dict[str, Any]) -> None:
    items = [{"userId": f"u{i}", "actionType": "COMPLETE_LEVEL", "clientActionId": f"c{i}",
              **(extra if i % 3 else {})} for i in range(7)]
    body = BATCH_BODY.read(orjson.dumps({"actions": items}))
    one_by_one = sum(v.count_keys(item) for item in body.actions)
    assert v.count_keys(body.actions) == one_by_one
    assert v.count_keys(body) == 1 + one_by_one
    assert v.count_keys([]) == 0 and v.count_keys([body.actions[0], {"x": 1}]) == (
        v.count_keys(body.actions[0]) + 1)


def test_a_repeated_key_in_a_batch_item_is_still_refused() -> None:
    text = (b'{"actions": [{"userId": "a", "actionType": "COMPLETE_LEVEL", '
            b'"clientActionId": "c", "userId": "b"}]}')
    with pytest.raises(BadRequest):
        BATCH_BODY.read(text)


def test_a_batchs_commands_are_each_items_command() -> None:
    items = [GOOD, {**GOOD, "board": "global"}, {**GOOD, "value": 4},
             {**GOOD, "displayName": "A\u200bmy"}, {**GOOD, "metadata": {"k": [1]}},
             {**GOOD, "displayName": "Amy", "board": "weekly", "metadata": {}}]
    body = BATCH_BODY.read(orjson.dumps({"actions": items}))
    assert API.commands(body.actions) == [
        API.command(item, i) for i, item in enumerate(body.actions)]


@pytest.mark.parametrize("body", [
    *(orjson.dumps({**{k: v for k, v in GOOD.items() if k != "userId"}, field: text})
      for field in ("actionType", "clientActionId", "board")
      for text in ["ok", "Ünï 🏆", "tab\tx", "del\x7f", "nl\n", "a\\b", "q\"x", "nul\x00"]),
    b'{"actionType":"COMPLETE_LEVEL","clientActionId":"c1","clientActionId":"c2"}',
    b'{"actionType":"COMPLETE_LEVEL","actionType":"X","clientActionId":"c1"}',
    b'{"actionType":"COMPLETE_LEVEL","clientActionId":"c1","board":null,"board":"b"}',
    b'{"actionType":"COMPLETE_LEVEL","clientActionId":"c1","board":null,"board":null}',
    b'{"actionType":"COMPLETE_LEVEL","clientActionId":"c1","metadata":{"a":1,"a":2}}',
    b'{"actionType":"COMPLETE_LEVEL","clientActionId":"c1","metadata":{"a":{"b":1}}}',
    b'{"actionType":"A\x7f","clientActionId":"c1"}',
    b'{"actionType":"A\\u0001","clientActionId":"c1"}',
    b'{"actionType":"A\x01","clientActionId":"c1"}',
], ids=repr)
def test_a_single_action_is_read_as_the_declared_struct_reads_it(body: bytes) -> None:
    """The same for a single action's body: its keys counted flat, and without the
    printable pattern where no escape or DEL can hide a control character."""
    declared = v.BodyReader(ActionRequest)
    try:
        expected: Any = astuple(declared.read(body))
    except BadRequest as exc:
        expected = ("refused", exc.message)
    try:
        got: Any = astuple(ACTION_BODY.read(body))
    except BadRequest as exc:
        got = ("refused", exc.message)
    assert got == expected
