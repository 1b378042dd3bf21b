"""The GraphQL types say what the REST replies say: same fields, same nullability."""

from __future__ import annotations

import msgspec
import pytest
from msgspec import inspect as mi

from scoreboard.edge import replies
from scoreboard.graphql.schema import build_schema
from scoreboard.graphql.types import extra_fields, fields_of
from scoreboard.settings.graphql import GraphqlSettings

SCHEMA = build_schema(GraphqlSettings())


@pytest.mark.parametrize("struct", [replies.Entry, replies.Leaderboard, replies.Around,
                                    replies.UserScore, replies.ActionResult,
                                    replies.LiveUpdate], ids=lambda s: s.__name__)
def test_graphql_type_matches_its_reply(struct: type[msgspec.Struct]) -> None:
    gql = SCHEMA._schema.get_type(struct.__name__)
    assert gql is not None
    assert list(gql.fields) == fields_of(struct) + extra_fields(struct)
    info = mi.type_info(struct)
    assert isinstance(info, mi.StructType)
    for f in info.fields:
        nullable = not str(gql.fields[f.encode_name].type).endswith("!")
        optional = isinstance(f.type, mi.UnionType) and any(
            isinstance(t, mi.NoneType) for t in f.type.types)
        assert nullable == optional, f.name


def test_live_updates_tell_a_closed_period_in_a_nullable_field() -> None:
    assert extra_fields(replies.LiveUpdate) == ["periodClosed"]
    field = SCHEMA._schema.get_type("LiveUpdate").fields["periodClosed"]  # type: ignore[union-attr]
    assert str(field.type) == "PeriodClosed"  # null on every update but a close's
    closed = SCHEMA._schema.get_type("PeriodClosed")
    assert list(closed.fields) == ["board", "period", "endsAt", "top"]  # type: ignore[union-attr]
