"""JSON bodies without repeated keys (SPEC §4: refused, never "last one wins").

orjson parses and validates, and keeps the last of repeated keys without saying so.
Telling whether a key repeats needs the text: in a body without a backslash every key
is spelled in the text exactly as the parsed key, in quotes, and no string can hold a
quote, so a key that occurs in quotes only once in the whole text cannot repeat. Only
when that cheap check cannot rule a repeat out (a backslash anywhere, or a key whose
quoted form occurs twice, say as a value too) is the body read again, pair by pair,
by the standard library, which sees every key as written.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from scoreboard.http.errors import BadRequest


def loads(body: bytes) -> Any:
    """Parse `body`; BadRequest (400) if it is not JSON or an object repeats a key."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadRequest("body is not valid JSON (UTF-8)") from None
    if _may_repeat(body, value):
        try:
            json.loads(body, object_pairs_hook=_unique)
        except RecursionError:
            raise BadRequest("body nests too deeply") from None
    return value


def _may_repeat(body: bytes, value: Any) -> bool:
    if b"\\" in body:
        return True  # escapes can spell one key in two ways
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            for key, inner in item.items():
                if body.count(b'"%s"' % key.encode()) > 1:
                    return True
                if isinstance(inner, dict | list):
                    pending.append(inner)
        elif isinstance(item, list):
            pending.extend(inner for inner in item if isinstance(inner, dict | list))
    return False


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise BadRequest(f"the key {key[:64]!r} appears more than once")
            seen.add(key)
    return out
