"""Boards over HTTP (SPEC §11): what boards there are, a friends view, and the
administrator's run-time changes (create or redefine a board, reset its period, take a
user off it or out of a closed period's standings).

Reads are public when the leaderboard is; every change is a command to the writer, so it
is a logged record with who made it and why, seen by followers and after a restart.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from scoreboard.auth.tokens import Principal
from scoreboard.core.boards import BoardDef
from scoreboard.core.commands import (
    DefineBoard,
    ExcludeFromPeriod,
    RemoveStanding,
    ResetBoard,
    UserResult,
)
from scoreboard.core.ranking import Ranking
from scoreboard.edge import contract as c
from scoreboard.edge import validation as v
from scoreboard.edge.bodies import BoardRequest, ExclusionRequest, ReasonRequest
from scoreboard.edge.envelope import Routes, json_response
from scoreboard.edge.errors import BadRequest, UnknownResource
from scoreboard.http.public import Gatekeeper
from scoreboard.read.archive import PeriodReads
from scoreboard.read.views import Views, iso
from scoreboard.writer.actor import Submitter

BOARD_BODY = v.BodyReader(BoardRequest)
REASON_BODY = v.BodyReader(ReasonRequest)
EXCLUSION_BODY = v.BodyReader(ExclusionRequest)


class BoardsApi:
    def __init__(self, gate: Gatekeeper, writer: Submitter, views: Views,
                 archive: PeriodReads | None = None) -> None:
        self.gate = gate
        self.archive = archive
        self.settings = gate.settings
        self.writer = writer
        self.views = views

    def add_routes(self, routes: Routes) -> None:
        routes.add_get(c.BOARDS_PATH, self.get_boards)
        routes.add_get(c.LEADERBOARD_USERS_PATH, self.get_users)
        routes.add_get(c.PERIODS_PATH, self.get_periods)
        routes.add_put(c.ADMIN_BOARD_PATH, self.put_board)
        routes.add_post(c.RESET_PATH, self.reset)
        routes.add_delete(c.STANDING_PATH, self.remove_standing)
        routes.add_post(c.EXCLUSIONS_PATH, self.exclude)

    # -- reads ---------------------------------------------------------------------------

    async def get_boards(self, request: web.Request) -> web.Response:
        self.gate.reader(request)
        self.gate.limit(request, None)
        return json_response(orjson.dumps({"boards": self.views.boards()}))

    async def get_periods(self, request: web.Request) -> web.Response:
        """A board's closed periods, newest first, each with its top 3."""
        self.gate.reader(request)
        self.gate.limit(request, None)
        ranking = self._ranking(request.match_info["board"])
        if self.archive is None:
            raise UnknownResource("closed periods are not kept here")
        limit = v.int_param(request.query.get("limit"), "limit", c.DEFAULT_PERIODS, 1,
                            c.MAX_PERIODS)
        before = v.period_id(request.query.get("before"), "before")
        return json_response(orjson.dumps(
            await self.archive.periods(ranking.board, before, limit)))

    async def get_users(self, request: web.Request) -> web.Response:
        """A friends view: the asked users who are on the board, in rank order. An id is
        one a public view shows (a hidden user's pseudonym) or a real id; a hidden
        user's real id counts only for that user and administrators."""
        principal = self.gate.reader(request)
        self.gate.limit(request, None)
        ranking = self._ranking(request.query.get("board"))
        raw = request.query.get("ids")
        if raw is None or not raw:
            raise BadRequest(f"ids: 1-{c.MAX_FRIENDS} user ids, separated by commas")
        asked = raw.split(",")
        if len(asked) > c.MAX_FRIENDS:
            raise BadRequest(f"ids: at most {c.MAX_FRIENDS} user ids")
        users = [u for u in (self._visible(v.user_id(a), principal) for a in asked) if u]
        period = self.views.period(ranking.board)
        asked_period = v.period_id(request.query.get("period"))
        if asked_period is not None and (period is None or period.id != asked_period):
            if self.archive is None:
                raise UnknownResource("closed periods are not kept here")
            return json_response(orjson.dumps(
                await self.archive.users(ranking.board, asked_period, users)))
        return json_response(orjson.dumps({
            "board": ranking.board, "period": None if period is None else period.id,
            "entries": self.views.users(ranking, users), "totalUsers": len(ranking),
            "version": ranking.version,
        }))

    def _visible(self, asked: str, principal: Principal | None) -> str | None:
        pseudonyms = self.views.pseudonyms
        user_id = pseudonyms.resolve(asked)
        if user_id != asked or not pseudonyms.is_hidden(asked):
            return user_id
        if principal is not None and (principal.user_id == asked
                                      or self.settings.auth.admin_scope in principal.scopes):
            return asked
        return None  # a hidden user's real id: not there, to anyone else

    def _ranking(self, raw: str | None) -> Ranking:
        name = v.board_name(raw)
        ranking = self.views.ranking(name)
        if ranking is None:
            raise UnknownResource(f"no board {name!r}")
        return ranking

    # -- administration ------------------------------------------------------------------

    def _admin(self, request: web.Request) -> Principal:
        return self.gate.scoped(request, self.settings.auth.admin_scope)

    async def put_board(self, request: web.Request) -> web.Response:
        admin = self._admin(request)
        board = v.board_name(request.match_info["board"])
        body = BOARD_BODY.read(await self.gate.json_body(request))
        old = self.views.engine.definition(board) or BoardDef(board)
        follows = body.follows if body.follows is not None else old.follows
        result = await self.writer.submit(DefineBoard(
            user_id="", actor=admin.user_id, board=board, reason=body.reason,
            title=_pick(body.title, old.title if old.title != board else ""),
            sort=_pick(body.sort, old.sort), operator=_pick(body.operator, old.operator),
            follows=follows if isinstance(follows, str) else ",".join(follows),
            reset=_pick(body.reset, old.reset), timezone=_pick(body.timezone, old.timezone),
            start=old.start if body.start is None else body.start.timestamp(),
            end=old.end if body.end is None else body.end.timestamp(),
            ranks=_pick(body.ranks, old.ranks),
        ))
        return self._change(board, result)

    async def reset(self, request: web.Request) -> web.Response:
        """Close the board's current period now; the next one starts empty."""
        admin = self._admin(request)
        board = self._board_path(request)
        reason = REASON_BODY.read(await self.gate.json_body(request)).reason
        result = await self.writer.submit(ResetBoard(user_id="", actor=admin.user_id,
                                                     board=board, reason=reason))
        return self._change(board, result)

    async def remove_standing(self, request: web.Request) -> web.Response:
        """Take a user off the board's current period; they may score again from 0."""
        admin = self._admin(request)
        board = self._board_path(request)
        user_id = v.user_id(request.match_info["userId"])
        reason = REASON_BODY.read(await self.gate.json_body(request)).reason
        result = await self.writer.submit(RemoveStanding(user_id=user_id, actor=admin.user_id,
                                                         board=board, reason=reason))
        assert isinstance(result, UserResult)
        return json_response(orjson.dumps({"board": board, "userId": user_id,
                                           "seq": result.seq, "at": iso(result.at)}))

    async def exclude(self, request: web.Request) -> web.Response:
        """Take a user out of a closed period's standings: logged, then the archiver
        re-ranks the period without them (the close and its archive stay in the log)."""
        admin = self._admin(request)
        board = self._board_path(request)
        period = v.period_id(request.match_info["period"]) or ""
        body = EXCLUSION_BODY.read(await self.gate.json_body(request))
        if self.archive is None:
            raise UnknownResource("closed periods are not kept here")
        await self.archive.period(board, period)  # NotFound unless closed and archived
        row = await self.archive.store.archive_user(board, period, body.user_id)
        if row is None:
            raise UnknownResource(f"user {body.user_id!r} is not in period {period!r}")
        result = await self.writer.submit(ExcludeFromPeriod(
            user_id=body.user_id, actor=admin.user_id, board=board, period=period,
            score=row.score, reason=body.reason))
        assert isinstance(result, UserResult)
        return json_response(orjson.dumps({"board": board, "period": period,
                                           "userId": body.user_id, "seq": result.seq,
                                           "at": iso(result.at)}))

    def _board_path(self, request: web.Request) -> str:
        board = v.board_name(request.match_info["board"])
        if self.views.engine.definition(board) is None:
            raise UnknownResource(f"no board {board!r}")
        return board

    def _change(self, board: str, result: Any) -> web.Response:
        assert isinstance(result, UserResult)
        shown = next(b for b in self.views.boards() if b["id"] == board)
        return json_response(orjson.dumps({"board": shown, "seq": result.seq,
                                           "at": iso(result.at)}))


def _pick(given: str | None, current: str) -> str:
    return current if given is None else given
