"""The settings model read as a list of keys: each with its dotted name, type, default,
bounds, description and environment variables. Loading, error messages and the
configuration reference are all derived from this one reading."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import msgspec
from msgspec import inspect as mi

PREFIX = "SCOREBOARD_"
LISTS = (mi.ListType, mi.VarTupleType, mi.FrozenSetType, mi.SetType)


@dataclass(frozen=True, slots=True)
class Key:
    name: str  # dotted: "server.http_port", "events.nats.url"
    type: mi.Type  # without its Metadata wrapper
    default: Any
    doc: str
    expected: str | None  # a pattern's meaning in words
    alias: str | None  # a short variable besides the canonical one

    @property
    def variables(self) -> tuple[str, ...]:
        canonical = PREFIX + self.name.upper().replace(".", "__")
        return (canonical,) if self.alias is None else (self.alias, canonical)


@dataclass(frozen=True, slots=True)
class Table:
    name: str  # dotted: "server", "events.nats"
    doc: str
    keys: tuple[Key, ...]


def tables(model: type[msgspec.Struct]) -> Iterator[Table]:
    """Every table of the model (nested ones after their parent), in declaration order.
    Fields whose type is not a Struct nor a plain value (the action rules) are skipped."""
    yield from _walk(mi.type_info(model), "")


def _walk(info: mi.Type, prefix: str) -> Iterator[Table]:
    assert isinstance(info, mi.StructType)
    keys: list[Key] = []
    nested: list[tuple[mi.StructType, str]] = []
    for f in info.fields:
        name = f"{prefix}{f.name}"
        t, meta = _unwrap(f.type)
        if isinstance(t, mi.StructType):
            nested.append((t, name))
        elif not isinstance(t, mi.CustomType) or t.cls.__module__ == "pathlib":
            default = f.default if f.default_factory is msgspec.NODEFAULT else f.default_factory()
            extra = (meta.extra or {}) if meta else {}
            doc = (meta.extra_json_schema or {}).get("description", "") if meta else ""
            keys.append(Key(name, t, default, doc, extra.get("expected"), extra.get("env")))
    if prefix:
        yield Table(prefix.rstrip("."), (info.cls.__doc__ or "").strip(), tuple(keys))
    for t, name in nested:
        yield from _walk(t, f"{name}.")


def _unwrap(t: mi.Type) -> tuple[mi.Type, mi.Metadata | None]:
    if isinstance(t, mi.Metadata):
        return t.type, t
    return t, None


def number(value: float) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def expectation(t: mi.Type, expected: str | None = None) -> str:
    """What a value of this type must be, in words: 'an integer from 0 to 65535'."""
    t, meta = _unwrap(t)
    if expected is None and meta is not None:
        expected = (meta.extra or {}).get("expected")
    if expected is not None:
        return expected
    if isinstance(t, mi.BoolType):
        return "true or false"
    if isinstance(t, mi.IntType | mi.FloatType):
        what = "an integer" if isinstance(t, mi.IntType) else "a number"
        if t.ge is not None and t.le is not None:
            return f"{what} from {number(t.ge)} to {number(t.le)}"
        if t.ge is not None:
            return f"{what} of at least {number(t.ge)}"
        return what
    if isinstance(t, mi.StrType):
        if t.pattern is not None:
            return f"a string matching {t.pattern}"
        return "a non-empty string" if t.min_length else "a string"
    if isinstance(t, mi.LiteralType):
        return "one of " + ", ".join(str(v) for v in t.values)
    if isinstance(t, LISTS):
        item, _ = _unwrap(t.item_type)
        if isinstance(item, mi.StrType):
            return "a list of strings"
        if isinstance(item, mi.StructType):
            return "a list of tables"
        return f"a list, each {expectation(item)}"
    if isinstance(t, mi.CustomType):
        return "a non-empty path"
    if isinstance(t, mi.StructType):
        return "a table"
    return "a value of another type"
