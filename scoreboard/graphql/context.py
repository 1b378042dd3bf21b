"""What every GraphQL resolver is given: the parts it reads through, and the caller.

The caller is found as REST finds them (`scoreboard.edge.bearer`): the HTTP request's
`Authorization: Bearer` header, or on a graphql-transport-ws socket the
`connection_init` payload's `Authorization` (browsers cannot set headers on a
WebSocket). A token that is sent must be valid even where none is needed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from scoreboard.auth.tokens import Principal
from scoreboard.core.ranking import Ranking
from scoreboard.edge import validation as v
from scoreboard.edge.admission import Gate
from scoreboard.edge.contract import MAX_SEQ
from scoreboard.edge.envelope import USER
from scoreboard.edge.errors import BadRequest, Unauthorized
from scoreboard.http.public import PublicApi
from scoreboard.live.hub import Hub
from scoreboard.live.sessions import LiveSessions
from scoreboard.settings.model import Settings


@dataclass(frozen=True, slots=True)
class Parts:
    """The service's parts GraphQL reads and writes through (the REST handlers' own)."""

    api: PublicApi
    live: Gate
    hub: Hub
    sessions: LiveSessions

    @property
    def settings(self) -> Settings:
        return self.api.settings


@dataclass(eq=False)
class Context:
    """One HTTP request, or one graphql-transport-ws socket."""

    parts: Parts
    request: web.Request
    authorization: str | None = None
    principal: Principal | None = None
    # set by Strawberry from `connection_init` (sockets only)
    connection_params: dict[str, Any] | None = None

    def authenticate(self, authorization: str | None) -> None:
        """Take the caller's token (`Unauthorized` when one is sent and is not valid)."""
        self.authorization = authorization
        self.principal = self.parts.api.gate.bearer.principal(authorization, required=False)
        if self.principal is not None:
            self.request[USER] = self.principal.user_id

    def caller(self) -> Principal:
        if self.principal is None:
            self.parts.api.gate.metrics.auth_failure("missing")
            raise Unauthorized("a bearer token is required")
        return self.principal

    def reader(self) -> Principal | None:
        """The caller of a read: anyone while `leaderboard.public`, else a token."""
        if self.principal is None and not self.parts.settings.leaderboard.public:
            return self.caller()
        return self.principal

    async def board(self, board: str | None, min_seq: int | None = None) -> Ranking:
        """A read of one board: the caller checked, one hit, the board once `minSeq` is
        applied here (400 / 404 / 503)."""
        self.reader()
        self.hit()
        return await self.caught_up(board, min_seq)

    async def caught_up(self, board: str | None, min_seq: int | None) -> Ranking:
        """The board once `minSeq` is applied here, as on REST (400 / 404 / 503)."""
        seq = self.bounded(min_seq, "minSeq", 0, 0, MAX_SEQ) if min_seq is not None else None
        return await self.parts.api.ranking_at(board, seq)

    def hit(self, user_id: str | None = None) -> None:
        """One root field: one hit on the rate limits, as one REST request is."""
        self.parts.api.gate.limit(self.request, user_id)

    def bounded(self, value: int | None, name: str, default: int, lo: int, hi: int) -> int:
        if value is None:
            return default
        if not lo <= value <= hi:
            raise BadRequest(f"{name}: must be an integer from {lo} to {hi}")
        return value

    async def follow(self, board: str | None, limit: int | None) -> AsyncIterator[dict[str, Any]]:
        """The live top of a board: now, then after each change of it (newest only, as
        an SSE viewer gets it), under the live connection caps. When a period closes,
        the next update is the new period's board at once, with `periodClosed` telling
        the period that closed (one update per close); every other has it null."""
        parts = self.parts
        query = {"board": v.board_name(board)}
        if limit is not None:
            query["limit"] = str(limit)
        live = parts.live.check(query, self.authorization, query_token=False)
        ticket = parts.live.admit(live, parts.api.gate.addresses.of(self.request))
        try:
            client, snapshot = parts.hub.join_sse(live.board, live.limit, None, notices=True)
            session = parts.sessions.add(live.principal, client.end)
            try:
                assert snapshot is not None  # no Last-Event-ID: always a snapshot
                yield {**orjson.loads(snapshot.data_json), "periodClosed": None}
                while True:
                    await client.wake.wait()
                    client.wake.clear()
                    if client.ending is not None:
                        raise Unauthorized(client.ending)
                    notices, client.notices = client.notices or [], []
                    for notice in notices:
                        # The close is applied: the board is the new period's already,
                        # though the broadcast of it may not have come yet.
                        data = self._now(live.board, live.limit)
                        client.version = data["version"]
                        yield {**data, "periodClosed": orjson.loads(notice.data_json)}
                    current = client.group.current
                    if client.version < current.version:  # versions only grow
                        client.version = current.version
                        yield {**orjson.loads(current.data_json), "periodClosed": None}
                    if client.closed:
                        return
            finally:
                parts.sessions.remove(session)
                parts.hub.leave_sse(client)
        finally:
            parts.live.release(ticket)

    def _now(self, board: str, limit: int) -> dict[str, Any]:
        """The live top of the board as it stands (not as last broadcast)."""
        api = self.parts.api
        return api.views.live_update(api.ranking(board), limit)
