# Strawberry's field decorators are typed as returning Any.
# mypy: disable-error-code="untyped-decorator"
"""The GraphQL schema: the REST reads as queries, `reportAction` as the mutation, the
live top as a subscription, and errors carrying the REST error codes.

Every resolver goes through what the REST handlers use (`PublicApi`: boards, whom a
read is about, the read model, the writer path), so privacy, rules, quotas, proofs,
idempotency and frozen users are the same on both. Each root field counts as one
request against the rate limits. Refusals are the edge's errors; `CodedSchema` puts
their code and HTTP status in each GraphQL error's `extensions`, from the one table.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from functools import partial
from typing import Annotated

import orjson
import strawberry
from graphql import GraphQLError
from strawberry.extensions import MaxAliasesLimiter, MaxTokensLimiter, QueryDepthLimiter
from strawberry.scalars import JSON
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext, Info

from scoreboard.edge import contract as c
from scoreboard.edge import validation as v
from scoreboard.edge.errors import BadRequest, describe
from scoreboard.graphql import types as t
from scoreboard.graphql.context import Context
from scoreboard.http.public import ACTION_BODY, action_fields
from scoreboard.read.views import iso
from scoreboard.settings.graphql import GraphqlSettings

log = logging.getLogger("scoreboard.graphql")

Ctx = Info[Context, None]
MinSeq = Annotated[t.SafeInt | None, strawberry.argument(description=(
    "Answer from a state that includes this seq (a write's `seq`): read your own "
    "writes on any node, as `minSeq` on REST."))]


@strawberry.type(description="The boards and their standings (as GET /api/v1/…).")
class Query:
    @strawberry.field(description="Every configured board.")
    def boards(self, info: Ctx) -> list[t.Board]:
        ctx = info.context
        ctx.reader()
        ctx.hit()
        views = ctx.parts.api.views
        out = []
        for name in ctx.parts.settings.leaderboard.boards:
            ranking = views.ranking(name)
            if ranking is not None:
                out.append({"name": name, "totalUsers": len(ranking),
                            "version": ranking.version})
        return out  # type: ignore[return-value]

    @strawberry.field(description="A page of a board's standings, as GET /leaderboard: "
                                  "the top `limit`, the page after `cursor` (a "
                                  "`nextCursor`), of a closed `period` when one is given.")
    async def leaderboard(self, info: Ctx, board: str | None = None,
                          limit: int | None = None, period: str | None = None,
                          cursor: str | None = None,
                          minSeq: MinSeq = None) -> t.Leaderboard:
        ctx = info.context
        ranking = await ctx.board(board, minSeq)
        api = ctx.parts.api
        lb = ctx.parts.settings.leaderboard
        n = ctx.bounded(limit, "limit", lb.default_limit, 1, lb.max_limit)
        data = await api.page(ranking, n, period, cursor)
        return api.views.top(ranking, n) if data is None else data  # type: ignore[return-value]

    @strawberry.field(description="A user's score and rank (`me`: the caller), in a "
                                  "closed `period` when one is given.")
    async def score(self, info: Ctx, userId: str = "me", board: str | None = None,
                    period: str | None = None, minSeq: MinSeq = None) -> t.UserScore:
        ctx = info.context
        api = ctx.parts.api
        target = api.target(userId, ctx.caller() if userId == "me" else ctx.reader())
        ctx.hit()
        ranking = await ctx.caught_up(board, minSeq)
        return await api.score(target, ranking, period)  # type: ignore[return-value]

    @strawberry.field(description="A board's closed periods, newest first, each with its "
                                  "top 3 (as GET /boards/{board}/periods); `before`: a "
                                  "`next` given earlier.")
    async def periods(self, info: Ctx, board: str, limit: int | None = None,
                      before: str | None = None) -> t.Periods:
        ctx = info.context
        ranking = await ctx.board(board)
        archive = ctx.parts.api.archived()
        n = ctx.bounded(limit, "limit", c.DEFAULT_PERIODS, 1, c.MAX_PERIODS)
        return await archive.periods(  # type: ignore[no-any-return]
            ranking.board, v.period_id(before, "before"), n)

    @strawberry.field(description="A user and their neighbours by rank (`me`: the caller).")
    async def around(self, info: Ctx, userId: str = "me", radius: int | None = None,
                     board: str | None = None, minSeq: MinSeq = None) -> t.Around:
        ctx = info.context
        api = ctx.parts.api
        target = api.target(userId, ctx.caller() if userId == "me" else ctx.reader())
        ctx.hit()
        ranking = await ctx.caught_up(board, minSeq)
        r = ctx.bounded(radius, "radius", c.DEFAULT_RADIUS, 0,
                        ctx.parts.settings.leaderboard.max_radius)
        return api.around(target, ranking, r)  # type: ignore[return-value]

    @strawberry.field(description="Those users' entries in rank order (a friends list); "
                                  "ids not on the board, or hidden from the caller, are "
                                  "left out.")
    async def users(self, info: Ctx, ids: list[str], board: str | None = None,
                    minSeq: MinSeq = None) -> list[t.Entry]:
        ctx = info.context
        api = ctx.parts.api
        principal = ctx.reader()
        ctx.hit()
        ranking = await ctx.caught_up(board, minSeq)
        most = ctx.parts.settings.graphql.max_users
        if len(ids) > most:
            raise BadRequest(f"ids: at most {most} users")
        shown = [target.user_id for target in (api.target(i, principal) for i in ids)
                 if target.shown]
        return api.views.users(ranking, shown)  # type: ignore[return-value]


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Report a completed action of the caller: as "
                                     "POST /api/v1/scores/actions, exactly once per "
                                     "(user, clientActionId).")
    async def reportAction(
        self, info: Ctx, actionType: str, clientActionId: str,
        board: str | None = None, proof: str | None = None, metadata: JSON | None = None,
    ) -> t.ActionResult:
        ctx = info.context
        principal = ctx.caller()
        ctx.hit(principal.user_id)
        fields = {"actionType": actionType, "clientActionId": clientActionId,
                  "board": board, "proof": proof, "metadata": metadata}
        body = ACTION_BODY.read(orjson.dumps({k: v for k, v in fields.items()
                                              if v is not None}))
        result = await ctx.parts.api.report(principal, body)
        return action_fields(result, iso(result.at))  # type: ignore[return-value]


@strawberry.type
class Subscription:
    @strawberry.subscription(description="The live top of a board: now, then after each "
                                         "change of it (a slow client skips to the newest).")
    async def leaderboard(self, info: Ctx, board: str | None = None,
                          limit: int | None = None) -> AsyncGenerator[t.LiveUpdate, None]:
        ctx = info.context
        ctx.hit()
        async for data in ctx.follow(board, limit):
            yield data  # type: ignore[misc]


class CodedSchema(strawberry.Schema):
    """Errors with the REST error code (and HTTP status) in `extensions`; a fault of
    ours is logged and answered `INTERNAL`, never with its text."""

    def process_errors(self, errors: list[GraphQLError],
                       execution_context: ExecutionContext | None = None) -> None:
        for error in errors:
            if error.extensions and "code" in error.extensions:
                continue
            cause = error.original_error
            if cause is None:  # syntax, validation and the document limits
                error.extensions = {**(error.extensions or {}), "code": "INVALID_REQUEST"}
                continue
            status, code, message, _ = describe(cause)
            if status == 500:
                log.error("graphql resolver failed", exc_info=cause)
            error.message = message
            error.extensions = {**(error.extensions or {}), "code": code, "status": status}


def build_schema(settings: GraphqlSettings) -> strawberry.Schema:
    """The schema with this service's document limits."""
    return CodedSchema(
        query=Query, mutation=Mutation, subscription=Subscription,
        types=[t.LiveUpdate],
        extensions=[  # one of each per operation
            partial(MaxTokensLimiter, settings.max_tokens),
            partial(MaxAliasesLimiter, settings.max_aliases),
            partial(QueryDepthLimiter, settings.max_depth),
        ],
        config=StrawberryConfig(auto_camel_case=False, default_resolver=t.item,
                                scalar_map=t.SCALARS),
    )

