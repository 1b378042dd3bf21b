"""GraphQL object types derived from the reply Structs (`scoreboard.edge.replies`).

Each type is built from its Struct's declaration: the fields' JSON names (camelCase,
as REST writes them) become the GraphQL fields, scalars map one to one, a datetime is
the same ISO 8601 text REST sends, a nested Struct is its own type. Resolvers return
the read model's own dicts, which the schema's default resolver reads by key, so
nothing is copied or converted per request.
"""

from __future__ import annotations

from typing import Annotated, Any, NewType

import msgspec
import strawberry
from msgspec import inspect as mi
from strawberry.types.scalar import ScalarDefinition

from scoreboard.edge import replies

# GraphQL's Int is 32-bit; scores, seqs and counts are exact up to 2^53 - 1 (as JSON
# numbers everywhere else in the API), so an integer without 32-bit bounds is SafeInt.
SafeInt = NewType("SafeInt", int)
SCALARS: dict[object, ScalarDefinition] = {SafeInt: strawberry.scalar(
    name="SafeInt", serialize=int, parse_value=int,
    description="An integer beyond the 32 bits of Int, sent as a JSON number.",
)}
INT32 = 2**31 - 1
_SCALARS: dict[type[mi.Type], Any] = {
    mi.StrType: str, mi.BoolType: bool, mi.FloatType: float, mi.DateTimeType: str,
}
_BUILT: dict[type[msgspec.Struct], Any] = {}
_EXTRA: dict[type[msgspec.Struct], list[str]] = {}  # fields only GraphQL has, by reply


def _python_type(t: mi.Type) -> Any:
    if isinstance(t, mi.Metadata):  # a description on the field's type
        return _python_type(t.type)
    if isinstance(t, mi.UnionType):
        inner = [x for x in t.types if not isinstance(x, mi.NoneType)]
        if len(inner) != 1:
            raise TypeError(f"no GraphQL type for {t}")
        return _python_type(inner[0]) | None
    if isinstance(t, mi.ListType):
        return list[_python_type(t.item_type)]  # type: ignore[misc]
    if isinstance(t, mi.IntType):
        small = t.ge is not None and t.le is not None and -INT32 <= t.ge and t.le <= INT32
        return int if small else SafeInt
    if isinstance(t, mi.StructType):
        return object_type(t.cls)
    for kind, py in _SCALARS.items():
        if isinstance(t, kind):
            return py
    raise TypeError(f"no GraphQL type for {t}")


def object_type(struct: type[msgspec.Struct], **extra: Any) -> Any:
    """The Strawberry type of a reply Struct, built once; `extra`: fields GraphQL adds
    (name → type)."""
    built = _BUILT.get(struct)
    if built is None:
        info = mi.type_info(struct)
        assert isinstance(info, mi.StructType)
        annotations = {f.encode_name: _python_type(f.type) for f in info.fields} | extra
        _EXTRA[struct] = list(extra)
        cls = type(struct.__name__, (), {"__annotations__": annotations,
                                         "__doc__": struct.__doc__})
        built = _BUILT[struct] = strawberry.type(cls, description=struct.__doc__)
    return built


def fields_of(struct: type[msgspec.Struct]) -> list[str]:
    """The JSON names of a reply's fields, in declared order."""
    return [f.encode_name for f in msgspec.structs.fields(struct)]


def extra_fields(struct: type[msgspec.Struct]) -> list[str]:
    """The fields GraphQL adds to a reply's type (after the reply's own)."""
    return _EXTRA.get(struct, [])


def item(source: Any, name: str) -> object:
    """The default resolver: the read model's dicts by key, anything else by attribute."""
    if isinstance(source, dict):
        return source[name]
    return getattr(source, name)


Entry = object_type(replies.Entry)
Leaderboard = object_type(replies.Leaderboard)
Around = object_type(replies.Around)
UserScore = object_type(replies.UserScore)
ActionResult = object_type(replies.ActionResult)


@strawberry.type(description="A period of the board that closed (on schedule or by an "
                             "administrator's reset): its id, when it ended and its final "
                             "top at the subscription's limit (as PERIOD_CLOSED on "
                             "WebSocket and `event: period_closed` on SSE).")
class PeriodClosed:
    board: str
    period: str
    endsAt: str | None  # the GraphQL name: resolved from the dict by key
    top: list[Entry]  # type: ignore[valid-type]


LiveUpdate = object_type(
    replies.LiveUpdate,
    periodClosed=Annotated[PeriodClosed | None, strawberry.field(description=(
        "Set on the first update of a new period: the period that closed just before it. "
        "Null on every other update."))],
)
Periods = object_type(replies.Periods)


@strawberry.type(description="A board and how many users are on it.")
class Board:
    name: str
    totalUsers: int  # the GraphQL name: resolved from the dict by key
    version: int
