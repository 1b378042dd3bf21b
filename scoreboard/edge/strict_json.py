"""JSON bodies without repeated keys (SPEC §4: refused, never "last one wins").

orjson and msgspec parse and validate, and keep the last of repeated keys without
saying so.
Telling whether a key repeats needs the text. The parsed objects hold `keys` keys, each
spelled at least once in the text (a caller never counts a key the text may lack), and
every key the text spells ends at a ':' outside strings. So when the text holds
exactly `keys` ':' in all (nearly every body: no ':' inside a string), no key
repeats. Else, in a body without a backslash no string can hold a quote, so the quotes
alone split the text into strings and what lies between them, and the ':' outside
strings are counted. Only when neither count rules a repeat out (a backslash anywhere,
or more keys in the text than parsed) is the body read again, pair by pair, by the
standard library, which sees every key as written and names the repeated one.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from scoreboard.edge.errors import BadRequest


def loads(body: bytes) -> Any:
    """Parse `body`; BadRequest (400) if it is not JSON or an object repeats a key."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadRequest("body is not valid JSON (UTF-8)") from None
    if type(value) in _CONTAINERS:
        check_unique(body, _count_keys(value))
    return value


def check_unique(body: bytes, keys: int) -> None:
    """BadRequest if an object of `body` repeats a key; `keys` is how many distinct keys
    its parsed value holds, counting none the text may lack (fewer than the text spells
    only when some key repeats, or when the decoder dropped some, e.g. null fields)."""
    if body.count(b":") == keys:
        return  # every ':' ends one of the `keys` keys the text spells: none is repeated
    if b"\\" in body or _keys_in_text(body) != keys:  # a backslash: escapes can spell
        try:                                          # one key in two ways
            json.loads(body, object_pairs_hook=_unique)
        except RecursionError:
            raise BadRequest("body nests too deeply") from None


_CONTAINERS = (dict, list)


def _keys_in_text(body: bytes) -> int:
    # With no backslash, quotes alone delimit strings: the text between them, taken
    # alternately, is everything outside strings, and there each ':' ends one key.
    return b"".join(body.split(b'"')[::2]).count(b":")


def _count_keys(value: Any) -> int:
    keys = 0
    pending = [value]
    while pending:
        item = pending.pop()
        inner = item.values() if type(item) is dict else item
        if type(item) is dict:
            keys += len(item)
        pending.extend(v for v in inner if type(v) in _CONTAINERS)
    return keys


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise BadRequest(f"the key {key[:64]!r} appears more than once")
            seen.add(key)
    return out
