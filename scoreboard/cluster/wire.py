"""The frames between a follower and the writer: commands out, results back. Pure.

A follower sends `{"commands": [[id, command], …]}`; the writer answers each frame with
`{"results": [[id, {"ok": result} | {"error": {"code", "message", "retryAfter"}}], …]}`.
Commands arrive already authenticated (the follower verified the token and the proof);
the connection itself is authenticated with the cluster's internal credential.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import asdict
from typing import Any

import orjson

from scoreboard.core import errors
from scoreboard.core.commands import (
    ActionResult,
    AdjustScore,
    ClearFlag,
    Command,
    ProofClaims,
    SetFrozen,
    SetNameHidden,
    SubmitAction,
    UserResult,
)
from scoreboard.core.errors import Refused
from scoreboard.writer import Overloaded, Result, StoreDown

COMMANDS: dict[str, type[Command]] = {
    cls.__name__: cls for cls in (SubmitAction, AdjustScore, SetFrozen, SetNameHidden, ClearFlag)
}
# Every code a writer may answer, back to a class the edge maps to its status.
REFUSALS: dict[str, type[Refused]] = {
    cls.code: cls for cls in (
        errors.InvalidCommand, errors.UnknownAction, errors.NotFound, errors.UserFrozen,
        errors.ProofInvalid, errors.ProofReused, errors.IdempotencyConflict,
        errors.QuotaExceeded, Overloaded, StoreDown,
    )
}
AUTH_HEADER = "X-Scoreboard-Internal"


class WireError(ValueError):
    """A frame that does not follow this protocol."""


def internal_credential(secret: bytes) -> str:
    """What a process presents to the writer: derived from the shared secret, never it."""
    return hmac.new(secret, b"scoreboard internal forwarding", hashlib.sha256).hexdigest()


def encode_commands(items: list[tuple[int, Command]]) -> bytes:
    return orjson.dumps({"commands": [[i, _command(cmd)] for i, cmd in items]})


def _command(cmd: Command) -> dict[str, Any]:
    body = asdict(cmd)
    body["type"] = type(cmd).__name__
    return body


def decode_commands(frame: str | bytes) -> list[tuple[int, Command | WireError]]:
    try:
        items = orjson.loads(frame)["commands"]
        pairs = [(int(i), body) for i, body in items]
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise WireError(f"not a command frame: {exc}") from None
    out: list[tuple[int, Command | WireError]] = []
    for i, body in pairs:
        try:
            out.append((i, _decode_command(body)))
        except (KeyError, TypeError, ValueError) as exc:
            out.append((i, WireError(f"not a command: {exc!r}")))
    return out


def _decode_command(body: dict[str, Any]) -> Command:
    body = dict(body)
    cls = COMMANDS[body.pop("type")]
    if cls is SubmitAction and body.get("proof") is not None:
        body["proof"] = ProofClaims(**body["proof"])
    return cls(**body)


def encode_results(items: list[tuple[int, Result | Refused]]) -> bytes:
    out: list[list[Any]] = []
    for i, result in items:
        if isinstance(result, Refused):
            out.append([i, {"error": {"code": result.code, "message": result.message,
                                      "retryAfter": result.retry_after}}])
        else:
            body = asdict(result)
            body["type"] = "action" if isinstance(result, ActionResult) else "user"
            out.append([i, {"ok": body}])
    return orjson.dumps({"results": out})


def decode_results(frame: str | bytes) -> list[tuple[int, Result | Refused]]:
    try:
        items = orjson.loads(frame)["results"]
        return [(int(i), _decode_result(body)) for i, body in items]
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise WireError(f"not a result frame: {exc!r}") from None


def _decode_result(body: dict[str, Any]) -> Result | Refused:
    if "error" in body:
        err = body["error"]
        cls = REFUSALS.get(err["code"], StoreDown)
        retry = err.get("retryAfter")
        if cls is errors.QuotaExceeded:
            return errors.QuotaExceeded(err["message"], retry_after=float(retry or 1.0))
        refusal = cls.__new__(cls)
        Refused.__init__(refusal, err["message"], retry_after=retry)
        return refusal
    ok = dict(body["ok"])
    kind = ok.pop("type")
    return ActionResult(**ok) if kind == "action" else UserResult(**ok)
