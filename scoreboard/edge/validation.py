"""Strict parsing of request bodies and query values. Anything off → `BadRequest`.

Limits and patterns come from `scoreboard.edge.contract`, which the OpenAPI
document is built from too.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from scoreboard.core.errors import ProofInvalid
from scoreboard.edge import strict_json
from scoreboard.edge.contract import BOARD_RE, JWS_RE, MAX_DEPTH, MAX_ID, PRINTABLE_RE
from scoreboard.edge.errors import BadRequest

__all__ = ["BadRequest"]


def parse_json_object(body: bytes) -> dict[str, Any]:
    value = strict_json.loads(body)  # 400 for invalid JSON and for repeated keys
    if not isinstance(value, dict):
        raise BadRequest("body must be a JSON object")
    return value


def _has_nul(value: Any) -> bool:
    """NUL cannot be stored as text by every backend; refuse it at the edge."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any("\x00" in k or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def _depth(value: Any, level: int = 0) -> int:
    if level > MAX_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


def string(body: dict[str, Any], name: str, *, required: bool, max_len: int = MAX_ID,
           pattern: re.Pattern[str] = PRINTABLE_RE) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise BadRequest(f"{name} is required")
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be a string")
    if not 0 < len(value) <= max_len or not pattern.match(value):
        if pattern is JWS_RE:
            raise ProofInvalid(f"{name} is not a compact JWS")
        raise BadRequest(f"{name} must be 1-{max_len} printable characters")
    return value


def reject_unknown(body: dict[str, Any], allowed: frozenset[str]) -> None:
    unknown = set(body) - allowed
    if unknown:
        raise BadRequest(f"unknown field(s): {', '.join(sorted(unknown))}")


def metadata(body: dict[str, Any], max_bytes: int) -> dict[str, Any] | None:
    value = body.get("metadata")
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadRequest("metadata must be a JSON object")
    if _depth(value) > MAX_DEPTH:
        raise BadRequest(f"metadata may nest at most {MAX_DEPTH} levels")
    if _has_nul(value):
        raise BadRequest("metadata must not contain NUL characters")
    if len(orjson.dumps(value)) > max_bytes:
        raise BadRequest(f"metadata must be at most {max_bytes} bytes")
    return value


def board_name(value: str | None, default: str = "global") -> str:
    if value is None:
        return default
    if not BOARD_RE.match(value):
        raise BadRequest("board must be 1-64 characters of a-z, 0-9, '_' and '-'")
    return value


def int_param(raw: str | None, name: str, default: int, lo: int, hi: int) -> int:
    if raw is None:
        return default
    # ASCII only: str.isdigit() also takes '²', which int() then refuses (a 500).
    if not (raw.isascii() and raw.isdigit()) or len(raw) > max(6, len(str(hi))):
        raise BadRequest(f"{name} must be an integer from {lo} to {hi}")
    value = int(raw)
    if not lo <= value <= hi:
        raise BadRequest(f"{name} must be an integer from {lo} to {hi}")
    return value


def integer(body: dict[str, Any], name: str, lo: int, hi: int) -> int:
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"{name} must be an integer")
    if not lo <= value <= hi:
        raise BadRequest(f"{name} must be from {lo} to {hi}")
    return value


def flag(body: dict[str, Any], name: str) -> bool:
    """An optional true/false field; absent is false."""
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise BadRequest(f"{name} must be true or false")
    return value


def user_id(value: str) -> str:
    if len(value) > MAX_ID or not PRINTABLE_RE.match(value):
        raise BadRequest("userId must be 1-128 printable characters")
    return value
