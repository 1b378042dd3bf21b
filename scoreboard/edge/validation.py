"""Strict reading of request bodies and query values. Anything off → `BadRequest`
(or the refusal a field's declaration names), with a message that names the field.

A body is decoded straight into its Struct (`scoreboard.edge.bodies`) by msgspec, which
checks types, lengths, patterns, bounds and unknown fields in one pass. Only a refused
body is looked at again: `explain` walks the same declaration over the parsed JSON and
says, field by field in declared order, what is wrong. Repeated keys are refused by
`strict_json` from the text and the decoded value's key count.
"""

from __future__ import annotations

import functools
import operator
import re
import types
import typing
from itertools import chain, repeat
from typing import Annotated, Any, Generic, TypeVar

import msgspec
import orjson
from msgspec import UNSET, Meta
from msgspec import inspect as mi
from msgspec.structs import astuple

from scoreboard.core.errors import Refused
from scoreboard.edge import strict_json
from scoreboard.edge.contract import (
    BOARD_RE,
    DEFAULT_BOARD,
    MAX_DEPTH,
    MAX_ID,
    PERIOD_RE,
    PRINTABLE,
    PRINTABLE_RE,
    anchored,
)
from scoreboard.edge.errors import BadRequest

__all__ = ["BadRequest", "BodyReader"]

B = TypeVar("B", bound=msgspec.Struct)
Problem = tuple[str, type[Refused]]


class BodyReader(Generic[B]):
    """Reads one kind of request body: JSON bytes in, its Struct out, or a refusal.

    With `printable_at_once` (a body of many items: a trusted backend's batch; or one
    read on every request: a single action) the printable-text pattern is not run by
    msgspec on every string (a regular expression call each, 5% of the service's work
    under batches, 1% under single actions). A decoded string can hold a
    control character only if the text has a backslash (an escape) or a raw DEL: a
    body with neither is decoded into a copy of its Structs without that pattern (the
    same fields, names, values and other checks), and any other body, or one the copy
    refuses, is read by the declared Structs, which accept or refuse it as always."""

    def __init__(self, body_type: type[B], *, printable_at_once: bool = False) -> None:
        self.decoder = msgspec.json.Decoder(body_type)
        self.info = mi.type_info(body_type)
        self.lenient: msgspec.json.Decoder[Any] | None = None
        if printable_at_once:
            self.lenient = msgspec.json.Decoder(_without_printable(body_type))

    def read(self, body: bytes) -> B:
        if self.lenient is not None and b"\\" not in body and b"\x7f" not in body:
            try:
                quick = self.lenient.decode(body)
            except msgspec.MsgspecError:
                pass  # read again below, and refused as declared
            else:
                strict_json.check_unique(body, count_keys(quick))
                return quick  # type: ignore[no-any-return]
        try:
            value = self.decoder.decode(body)
        except msgspec.ValidationError as exc:
            raise self.refusal(body, str(exc)) from None
        except msgspec.DecodeError:
            strict_json.loads(body)  # says why: invalid UTF-8 or JSON, too deep
            raise BadRequest("body is not valid JSON (UTF-8)") from None
        strict_json.check_unique(body, count_keys(value))
        return value

    def refusal(self, body: bytes, fallback: str) -> Refused:
        raw = strict_json.loads(body)  # not JSON, or a repeated key: said first
        message, refusal = explain(self.info, raw, "") or (fallback, BadRequest)
        return refusal(message)


def count_keys(value: Any) -> int:
    """The keys a decoded body holds that its text surely spells: fields at their
    default (None, unset, or another such as `false`) are not counted, since the text
    may lack them. Counting one would hide a repeated key of the same body."""
    keys = 0
    if isinstance(value, msgspec.Struct):
        row = astuple(value)
        if _SCALARS.issuperset(map(type, row)) and _nullable(value.__class__):
            return len(row) - row.count(None)  # flat (a single action): counted at C speed
        for item, default in zip(row, _defaults(value.__class__)):  # noqa: B905 (same length)
            if item is default or item is None or item is UNSET:
                continue
            keys += 1
            if item.__class__ in _CONTAINERS or isinstance(item, msgspec.Struct):
                keys += count_keys(item)
    elif value.__class__ is dict:
        keys = len(value)
        for item in value.values():
            if item.__class__ in _CONTAINERS:
                keys += count_keys(item)
    else:
        flat = _flat_items(value)
        if flat is not None:
            return flat
        for item in value:
            if item.__class__ in _CONTAINERS or isinstance(item, msgspec.Struct):
                keys += count_keys(item)
    return keys


def _flat_items(items: list[Any]) -> int | None:
    """`count_keys` of a list of Structs of one class whose defaults are all None and
    whose fields hold no list, dict or Struct (a batch's items, mostly): the fields not
    None, counted at C speed. None for any other list."""
    if not items:
        return None
    kinds = set(map(type, items))
    if len(kinds) != 1:
        return None
    kind = kinds.pop()
    if not (issubclass(kind, msgspec.Struct) and _nullable(kind)):
        return None
    rows = list(map(astuple, items))
    if any(t in _CONTAINERS or issubclass(t, msgspec.Struct)
           for t in set(map(type, chain.from_iterable(rows)))):
        return None
    return len(kind.__struct_fields__) * len(rows) - sum(map(tuple.count, rows, repeat(None)))


_REQUIRED = object()  # a field without a default: never at it


@functools.cache
def _nullable(struct: type[msgspec.Struct]) -> bool:
    """Whether every default of the Struct is None: a field is then at its default
    exactly when it is None."""
    return all(d is None or d is _REQUIRED for d in _defaults(struct))


@functools.cache
def _defaults(struct: type[msgspec.Struct]) -> tuple[Any, ...]:
    """Each field's default, in field order (defaults belong to the last fields)."""
    defaults = struct.__struct_defaults__
    return (_REQUIRED,) * (len(struct.__struct_fields__) - len(defaults)) + defaults


_CONTAINERS = (dict, list)
# Values that hold no key (a Struct's field of these alone is flat); not UNSET
_SCALARS = frozenset((str, int, float, bool, type(None)))
_PRINTABLE = anchored(PRINTABLE)  # as the declarations spell it


def _without_printable(cls: type[Any]) -> type[msgspec.Struct]:
    """A copy of a Struct (and of the Structs its lists hold) whose text fields have no
    printable pattern."""
    hints = typing.get_type_hints(cls, include_extras=True)
    copied: list[tuple[str, Any, Any]] = []
    defaults = dict(zip(cls.__struct_fields__[len(cls.__struct_fields__)
                                              - len(cls.__struct_defaults__):],
                        cls.__struct_defaults__, strict=True))
    for name in cls.__struct_fields__:
        copied.append((name, _hint_without_printable(hints[name]),
                       defaults.get(name, msgspec.NODEFAULT)))
    return msgspec.defstruct(f"{cls.__name__}Read", copied, bases=cls.__bases__,
                             gc=cls.__struct_config__.gc, module=cls.__module__)


def _hint_without_printable(hint: Any) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Annotated:
        metas = [Meta(**{k: getattr(m, k) for k in _META_KEYS if getattr(m, k) is not None})
                 if isinstance(m, Meta) and m.pattern == _PRINTABLE else m for m in args[1:]]
        return Annotated[(_hint_without_printable(args[0]), *metas)]
    if origin in (types.UnionType, typing.Union):
        return functools.reduce(operator.or_, map(_hint_without_printable, args))
    if origin is list:
        return list[_hint_without_printable(args[0])]  # type: ignore[misc]
    if isinstance(hint, type) and issubclass(hint, msgspec.Struct):
        return _without_printable(hint)
    return hint


_META_KEYS = ("gt", "ge", "lt", "le", "multiple_of", "min_length", "max_length", "tz",
              "title", "description", "examples", "extra_json_schema", "extra")


# -- explaining a refusal from the declaration ----------------------------------------------


def explain(t: mi.Type, value: Any, path: str) -> Problem | None:
    """The first thing wrong with `value` as type `t`, or None if nothing is."""
    extra: dict[str, Any] = {}
    if isinstance(t, mi.Metadata):
        extra = t.extra or {}
        t = t.type
    if isinstance(t, mi.UnionType):  # optional fields: T | None
        if value is None and any(isinstance(x, mi.NoneType) for x in t.types):
            return None
        return explain(next(x for x in t.types if not isinstance(x, mi.NoneType)), value, path)
    refusal: type[Refused] = extra.get("refusal", BadRequest)
    if isinstance(t, mi.StructType):
        return _explain_object(t, value, path)
    if isinstance(t, mi.StrType):
        return _explain_text(t, value, path, extra.get("means", "characters"), refusal)
    if isinstance(t, mi.BoolType):
        return None if value is True or value is False else (
            f"{path}: must be true or false", refusal)
    if isinstance(t, mi.IntType):
        return _explain_integer(t, value, path, refusal)
    if isinstance(t, mi.DictType):
        return None if isinstance(value, dict) else (f"{path}: must be a JSON object", refusal)
    if isinstance(t, mi.ListType):
        return _explain_list(t, value, path, refusal)
    return None


def _explain_object(t: mi.StructType, value: Any, path: str) -> Problem | None:
    if not isinstance(value, dict):
        return f"{path or 'body'}: must be a JSON object", BadRequest
    prefix = f"{path}." if path else ""
    unknown = set(value) - {f.encode_name for f in t.fields}
    if unknown:
        names = ", ".join(sorted(name[:64] for name in unknown))
        return f"{path or 'body'}: unknown field(s): {names}", BadRequest
    for f in t.fields:
        if f.encode_name not in value:
            if f.required:
                return f"{prefix}{f.encode_name}: is required", BadRequest
            continue
        problem = explain(f.type, value[f.encode_name], prefix + f.encode_name)
        if problem is not None:
            return problem
    return None


def _explain_text(t: mi.StrType, value: Any, path: str, means: str,
                  refusal: type[Refused]) -> Problem | None:
    if not isinstance(value, str):
        return f"{path}: must be a string", BadRequest
    lo, hi = t.min_length or 0, t.max_length
    if len(value) < lo or (hi is not None and len(value) > hi) or (
        t.pattern is not None and not _pattern(t.pattern).search(value)
    ):
        size = f"{max(lo, 1)}-{hi} " if hi is not None else ""
        return f"{path}: must be {size}{means}", refusal
    return None


def _explain_integer(t: mi.IntType, value: Any, path: str,
                     refusal: type[Refused]) -> Problem | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return f"{path}: must be an integer", BadRequest
    if (t.ge is not None and value < t.ge) or (t.le is not None and value > t.le):
        lo = "" if t.ge is None else f" from {t.ge}"
        hi = "" if t.le is None else f" to {t.le}"
        return f"{path}: must be an integer{lo}{hi}", refusal
    return None


def _explain_list(t: mi.ListType, value: Any, path: str,
                  refusal: type[Refused]) -> Problem | None:
    if not isinstance(value, list):
        return f"{path}: must be a list", BadRequest
    if len(value) < (t.min_length or 0) or (t.max_length is not None
                                            and len(value) > t.max_length):
        most = "" if t.max_length is None else f" and at most {t.max_length}"
        return f"{path}: must hold at least {t.min_length or 0}{most} items", refusal
    for i, item in enumerate(value):
        problem = explain(t.item_type, item, f"{path}[{i}]")
        if problem is not None:
            return problem
    return None


@functools.cache
def _pattern(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


# -- what a declaration cannot say ----------------------------------------------------------


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


def metadata(value: dict[str, Any] | None, max_bytes: int, path: str = "metadata"
             ) -> dict[str, Any] | None:
    """Metadata's depth, NUL characters and size as JSON (the declaration says object)."""
    if value is None:
        return None
    if _depth(value) > MAX_DEPTH:
        raise BadRequest(f"{path}: may nest at most {MAX_DEPTH} levels")
    if _has_nul(value):
        raise BadRequest(f"{path}: must not contain NUL characters")
    try:
        size = len(orjson.dumps(value))
    except orjson.JSONEncodeError:  # an integer beyond 64 bits
        raise BadRequest(f"{path}: numbers must fit in 64 bits") from None
    if size > max_bytes:
        raise BadRequest(f"{path}: must be at most {max_bytes} bytes as JSON")
    return value


# -- query values and path parts ------------------------------------------------------------


def board_name(value: str | None, default: str = DEFAULT_BOARD) -> str:
    if value is None:
        return default
    if not BOARD_RE.match(value):
        raise BadRequest("board: must be 1-64 characters of a-z, 0-9, '_' and '-'")
    return value


def period_id(value: str | None, name: str = "period") -> str | None:
    """A period's id as a query gives it (None when not given), or 400."""
    if value is None:
        return None
    if not PERIOD_RE.match(value):
        raise BadRequest(f"{name}: must be 1-64 characters of A-Z, a-z, 0-9, '.', ':', '_' "
                         "and '-'")
    return value


def int_param(raw: str | None, name: str, default: int, lo: int, hi: int) -> int:
    if raw is None:
        return default
    # ASCII only: str.isdigit() also takes '²', which int() then refuses (a 500).
    if not (raw.isascii() and raw.isdigit()) or len(raw) > max(6, len(str(hi))):
        raise BadRequest(f"{name}: must be an integer from {lo} to {hi}")
    value = int(raw)
    if not lo <= value <= hi:
        raise BadRequest(f"{name}: must be an integer from {lo} to {hi}")
    return value


def user_id(value: str) -> str:
    if len(value) > MAX_ID or not PRINTABLE_RE.match(value):
        raise BadRequest(f"userId: must be 1-{MAX_ID} printable characters")
    return value
