"""The frames between a follower and the writer: commands out, results back. Pure.

Both directions are JSON arrays with positional fields, in each dataclass's field order,
so neither side builds a dict per command (the writer pays for every one it decodes):

- a follower sends `[id, type, field…, id, type, field…, …]`, a `SubmitAction`'s proof
  as `[sub, act, jti, exp]` or null;
- the writer answers each frame with one frame, `[id, outcome, …]`, where outcome is
  `["a", field…]` (an `ActionResult`), `["u", field…]` (a `UserResult`) or
  `["e", code, message, retryAfter]` (a refusal).

Commands arrive already authenticated (the follower verified the token and the proof);
the connection itself is authenticated with the cluster's internal credential. Both
ends run the same release: the field order is the protocol.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import fields
from operator import attrgetter
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
from scoreboard.writer.actor import Overloaded, Result, StoreDown

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


def _getter(cls: type) -> attrgetter[Any]:
    return attrgetter(*(f.name for f in fields(cls)))


# Every dataclass here has several fields, so each getter returns a tuple.
_FIELDS: dict[type, attrgetter[Any]] = {cls: _getter(cls) for cls in COMMANDS.values()}
_PROOF = _getter(ProofClaims)
_ACTION = _getter(ActionResult)
_USER = _getter(UserResult)


class WireError(ValueError):
    """A frame that does not follow this protocol."""


def internal_credential(secret: bytes) -> str:
    """What a process presents to the writer: derived from the shared secret, never it."""
    return hmac.new(secret, b"scoreboard internal forwarding", hashlib.sha256).hexdigest()


def encode_commands(items: list[tuple[int, Command]]) -> bytes:
    out: list[Any] = []
    for i, cmd in items:
        values = list(_FIELDS[type(cmd)](cmd))
        if isinstance(cmd, SubmitAction) and cmd.proof is not None:
            values[-1] = _PROOF(cmd.proof)
        out.append(i)
        out.append([type(cmd).__name__, *values])
    return orjson.dumps(out)


def decode_commands(frame: str | bytes) -> list[tuple[int, Command | WireError]]:
    try:
        flat = orjson.loads(frame)
        if not isinstance(flat, list) or len(flat) % 2:
            raise TypeError("not an [id, command, …] array")
        pairs = [(int(flat[k]), flat[k + 1]) for k in range(0, len(flat), 2)]
    except (orjson.JSONDecodeError, TypeError, ValueError) as exc:
        raise WireError(f"not a command frame: {exc}") from None
    out: list[tuple[int, Command | WireError]] = []
    for i, body in pairs:
        try:
            out.append((i, _decode_command(body)))
        except (IndexError, KeyError, TypeError, ValueError) as exc:
            out.append((i, WireError(f"not a command: {exc!r}")))
    return out


def _decode_command(body: list[Any]) -> Command:
    cls = COMMANDS[body[0]]
    if cls is SubmitAction and len(body) == 8 and body[7] is not None:
        body[7] = ProofClaims(*body[7])
    return cls(*body[1:])


def encode_results(items: list[tuple[int, Result | Refused]]) -> bytes:
    out: list[Any] = []
    for i, result in items:
        out.append(i)
        if isinstance(result, ActionResult):
            out.append(["a", *_ACTION(result)])
        elif isinstance(result, UserResult):
            out.append(["u", *_USER(result)])
        else:
            out.append(["e", result.code, result.message, result.retry_after])
    return orjson.dumps(out)


def decode_results(frame: str | bytes) -> list[tuple[int, Result | Refused]]:
    try:
        flat = orjson.loads(frame)
        return [(int(flat[k]), _decode_result(flat[k + 1])) for k in range(0, len(flat), 2)]
    except (orjson.JSONDecodeError, IndexError, KeyError, TypeError, ValueError) as exc:
        raise WireError(f"not a result frame: {exc!r}") from None


def _decode_result(body: list[Any]) -> Result | Refused:
    kind = body[0]
    if kind == "a":
        return ActionResult(*body[1:])
    if kind == "u":
        return UserResult(*body[1:])
    if kind != "e":
        raise ValueError(f"unknown outcome {kind!r}")
    _, code, message, retry = body
    cls = REFUSALS.get(code, StoreDown)
    if cls is errors.QuotaExceeded:
        return errors.QuotaExceeded(message, retry_after=float(retry or 1.0))
    refusal = cls.__new__(cls)
    Refused.__init__(refusal, message, retry_after=retry)
    return refusal
