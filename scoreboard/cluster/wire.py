"""The frames between a follower and the writer: commands out, results back. Pure.

Both directions are JSON arrays with positional fields, in each dataclass's field order,
so neither side builds a dict per command (the writer pays for every one it decodes):

- a follower sends `[id, type, field…, id, type, field…, …]`, a field holding a
  dataclass (a `SubmitAction`'s proof) as that dataclass's positional array or null;
- the writer answers each frame with one frame, `[id, outcome, …]`, where outcome is
  `["a", field…]` (an `ActionResult`), `["u", field…]` (a `UserResult`) or
  `["e", code, message, retryAfter, limit]` (a refusal; `limit` is a quota's actions
  per window, for the follower's RateLimit-* headers, else null).

Every `Command` class of `scoreboard.core.commands` is carried, found by looking at the
module, and each field is checked against its annotation when it arrives: a command
that does not fit is refused alone, before the writer decides anything. Commands
arrive already authenticated (the follower verified the token and the proof); the
connection itself is authenticated by `scoreboard.cluster.handshake`. Both ends run the
same release: the field order is the protocol.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from dataclasses import dataclass, fields, is_dataclass
from operator import attrgetter, contains
from typing import Any, Union, get_args, get_origin, get_type_hints

import orjson

from scoreboard.core import commands, errors
from scoreboard.core.commands import ActionResult, Command, UserResult
from scoreboard.core.errors import Refused
from scoreboard.writer.actor import Overloaded, Result, StoreDown

COMMANDS: dict[str, type[Command]] = {
    cls.__name__: cls for cls in vars(commands).values()
    if isinstance(cls, type) and issubclass(cls, Command) and cls is not Command
}
# Every code a writer may answer, back to a class the edge maps to its status.
REFUSALS: dict[str, type[Refused]] = {
    cls.code: cls for cls in (
        errors.InvalidCommand, errors.UnknownAction, errors.NotFound, errors.UserFrozen,
        errors.ProofInvalid, errors.ProofReused, errors.IdempotencyConflict,
        errors.QuotaExceeded, errors.BoardConflict, Overloaded, StoreDown,
    )
}


class WireError(ValueError):
    """A frame, or one command of it, that does not follow this protocol."""


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    kinds: tuple[type, ...] | None  # the JSON types it may arrive as; None: any
    optional: bool
    nested: type | None  # a dataclass, carried as its positional array


def _field(name: str, hint: Any) -> _Field:
    args = get_args(hint) if get_origin(hint) in (Union, types.UnionType) else (hint,)
    optional = type(None) in args
    options = [a for a in args if a is not type(None)]
    if len(options) == 1 and is_dataclass(options[0]):
        return _Field(name, (list,), optional, options[0])  # type: ignore[arg-type]
    kinds: list[type] = []
    for option in options:
        base = get_origin(option) or option
        if base is float:
            kinds += [float, int]  # JSON writes 2.0 as 2.0, but an int given stays one
        elif base in (str, int, bool, dict, list):
            kinds.append(base)  # exact types: a bool is never taken for an int
        else:
            return _Field(name, None, optional, None)
    return _Field(name, tuple(kinds), optional, None)


def _layout(cls: type) -> tuple[_Field, ...]:
    hints = get_type_hints(cls)
    return tuple(_field(f.name, hints[f.name]) for f in fields(cls))


def _getter(cls: type) -> Callable[[Any], tuple[Any, ...]]:
    names = [f.name for f in fields(cls)]
    if len(names) == 1:
        return lambda obj: (getattr(obj, names[0]),)
    return attrgetter(*names)


_LAYOUTS: dict[type, tuple[_Field, ...]] = {cls: _layout(cls) for cls in COMMANDS.values()}
_LAYOUTS |= {f.nested: _layout(f.nested) for layout in list(_LAYOUTS.values())
             for f in layout if f.nested is not None}
_GETTERS = {cls: _getter(cls) for cls in _LAYOUTS}
# Where each class holds a nested dataclass: the common command has none to look at.
_NESTED = {cls: [k for k, f in enumerate(layout) if f.nested is not None]
           for cls, layout in _LAYOUTS.items()}


class _Anything:
    """The types a field checked by no annotation may arrive as: all of them."""

    def __contains__(self, _kind: object) -> bool:
        return True


def _quick(layout: tuple[_Field, ...]) -> tuple[Any, ...]:
    """Per field, the types that pass it as they are: a nested dataclass only as null
    (a proof is checked by the field loop)."""
    none = {type(None)}
    return tuple(
        none if f.nested is not None
        else _Anything() if f.kinds is None
        else frozenset(f.kinds) | (none if f.optional else set())
        for f in layout
    )


# Whether a command can be built at once: one C-level pass over its fields' types.
_QUICK = {cls: _quick(layout) for cls, layout in _LAYOUTS.items()}
_ACTION = _getter(ActionResult)
_USER = _getter(UserResult)


def _flatten(obj: Any) -> list[Any]:
    values = list(_GETTERS[type(obj)](obj))  # KeyError: not a class of this protocol
    for k in _NESTED[type(obj)]:
        if values[k] is not None:
            values[k] = _flatten(values[k])
    return values


def _build(cls: type, values: Any) -> Any:
    quick = _QUICK[cls]
    if type(values) is list and len(values) == len(quick) \
            and all(map(contains, quick, map(type, values))):
        return cls(*values)  # every field as its annotation takes it, nothing nested
    layout = _LAYOUTS[cls]
    if not isinstance(values, list) or len(values) != len(layout):
        raise ValueError(f"{cls.__name__} takes {len(layout)} fields")
    for k, f in enumerate(layout):
        value = values[k]
        if value is None:
            if not f.optional:
                raise TypeError(f"{cls.__name__}.{f.name} may not be null")
        elif f.nested is not None:
            try:
                values[k] = _build(f.nested, value)
            except (TypeError, ValueError) as exc:
                raise TypeError(f"{cls.__name__}.{f.name}: {exc}") from None
        elif f.kinds is not None and type(value) not in f.kinds:
            raise TypeError(f"{cls.__name__}.{f.name} may not be a {type(value).__name__}")
    return cls(*values)


def encode_commands(items: list[tuple[int, Command]]
                    ) -> tuple[bytes | None, list[tuple[int, WireError]]]:
    """The frame for `items` (None when none of them fits one) and those refused, each
    alone: a command this protocol cannot carry never holds the others back."""
    out: list[Any] = []
    refused: list[tuple[int, WireError]] = []
    for i, cmd in items:
        try:
            body = [type(cmd).__name__, *_flatten(cmd)]
        except KeyError:
            refused.append((i, WireError(f"{type(cmd).__name__} is not a known command")))
            continue
        out.append(i)
        out.append(body)
    try:
        frame = orjson.dumps(out)
    except orjson.JSONEncodeError:
        # A value JSON cannot carry: only now look at each command to find which.
        kept: list[Any] = []
        for k in range(0, len(out), 2):
            try:
                orjson.dumps(out[k + 1])
            except orjson.JSONEncodeError as exc:
                refused.append((out[k], WireError(f"cannot encode {out[k + 1][0]}: {exc}")))
            else:
                kept += out[k:k + 2]
        out, frame = kept, orjson.dumps(kept)
    return (frame if out else None), refused


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
            out.append((i, _build(COMMANDS[body[0]], body[1:])))
        except (IndexError, KeyError, TypeError, ValueError) as exc:
            out.append((i, WireError(f"not a command: {exc!r}")))
    return out


def encode_results(items: list[tuple[int, Result | Refused]]) -> bytes:
    out: list[Any] = []
    for i, result in items:
        out.append(i)
        if isinstance(result, ActionResult):
            out.append(["a", *_ACTION(result)])
        elif isinstance(result, UserResult):
            out.append(["u", *_USER(result)])
        else:
            limit = result.limit if isinstance(result, errors.QuotaExceeded) else None
            out.append(["e", result.code, result.message, result.retry_after, limit])
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
    _, code, message, retry, limit = body
    cls = REFUSALS.get(code, StoreDown)
    if cls is errors.QuotaExceeded:
        return errors.QuotaExceeded(message, retry_after=float(retry or 1.0),
                                    limit=limit if type(limit) is int else None)
    refusal = cls.__new__(cls)
    Refused.__init__(refusal, message, retry_after=retry)
    return refusal
