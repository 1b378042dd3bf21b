"""The public HTTP API (aiohttp), per SPEC §4: score actions and the reads.

Handlers only translate: HTTP in, commands to the writer and queries to the views,
HTTP out. They receive the few parts they use; errors leave through the request
envelope, which maps them to HTTP in one table (`scoreboard.edge.errors`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from scoreboard.auth.proofs import ProofAuthority
from scoreboard.auth.tokens import Principal
from scoreboard.cluster.progress import Progress
from scoreboard.core.commands import ActionResult, SubmitAction
from scoreboard.core.errors import ProofInvalid, Refused
from scoreboard.core.periods import Period
from scoreboard.core.ranking import Ranking
from scoreboard.edge import contract as c
from scoreboard.edge import validation as v
from scoreboard.edge.bearer import Bearer
from scoreboard.edge.bodies import ActionRequest
from scoreboard.edge.clients import ClientAddress
from scoreboard.edge.envelope import ACTION, JSON_HEADERS, USER, Routes, json_response
from scoreboard.edge.errors import (
    JSON,
    BadRequest,
    EdgeRefusal,
    RateLimited,
    Unauthorized,
    Unavailable,
    UnknownResource,
    UnsupportedMediaType,
)
from scoreboard.edge.ratelimit import RateLimiter, Verdict
from scoreboard.edge.ready import Ready, ReadyReply
from scoreboard.http.deadlines import body_at_hand, read_body
from scoreboard.read.archive import PeriodReads
from scoreboard.read.cursor import Cursor, CursorError
from scoreboard.read.views import TopReply, Views, iso
from scoreboard.runtime.metrics import Metrics
from scoreboard.settings.model import Settings
from scoreboard.writer.actor import Result, Submitter

ACTION_BODY = v.BodyReader(ActionRequest, printable_at_once=True)
NO_CACHE = {"Cache-Control": "no-cache"}
TOP_HEADERS = {**NO_CACHE, **JSON_HEADERS}
# An accepted or replayed action's 200: its head serialized once, its body per reply
ACTION_REPLY = Ready.shape(200, JSON_HEADERS)


def action_fields(r: ActionResult, at: str) -> dict[str, Any]:
    """The reply to an accepted or replayed score change, its time given as `iso` text."""
    return {
        "userId": r.user_id, "board": r.board, "actionType": r.action_type, "delta": r.delta,
        "newScore": r.new_score, "rank": r.rank, "replayed": r.replayed, "seq": r.seq,
        "at": at,
    }


def page_cursor(text: str, board: str, period: Period | None) -> Cursor:
    """The cursor of a later page, which must be one of this board and period (a
    period that closed since has its own pages), or 400."""
    try:
        cursor = Cursor.decode(text)
    except CursorError as exc:
        raise BadRequest(str(exc)) from None
    if cursor.board != board or cursor.period != (None if period is None else period.id):
        raise BadRequest("cursor: it pages another board or period")
    return cursor


def action_json(r: ActionResult) -> bytes:
    """The reply to an accepted or replayed score change (user action or adjustment)."""
    return orjson.dumps(action_fields(r, iso(r.at)))


class TopAnswers(dict[int, tuple[TopReply, Ready, Ready]]):
    """A cached top reply as ready bytes, its 200 and its 304, serialized once per reply
    rather than per request (`scoreboard.edge.ready`). Keyed by the reply object, which
    the entry holds (its id cannot be reused meanwhile). Bounded: a board's version
    moves with each change, and the old replies are not asked again."""

    SIZE = 256

    def of(self, reply: TopReply) -> tuple[TopReply, Ready, Ready]:
        held = self.get(id(reply))
        if held is not None and held[0] is reply:
            return held
        if len(self) >= self.SIZE:
            self.clear()
        etag = {"ETag": reply.etag}
        held = self[id(reply)] = (reply, Ready.of(200, {**etag, **TOP_HEADERS}, reply.body),
                                  Ready.of(304, {**etag, **NO_CACHE}))
        return held


PLAIN_TOP = frozenset(("board", "limit"))
PLAIN_SIZE = 256


@dataclass
class Gatekeeper:
    """What every handler asks first: who is calling, within which limits."""

    settings: Settings
    bearer: Bearer
    user_limiter: RateLimiter
    ip_limiter: RateLimiter
    addresses: ClientAddress
    metrics: Metrics

    def principal(self, request: web.Request, *, required: bool) -> Principal | None:
        principal = self.bearer.principal(request.headers.get("Authorization"),
                                          required=required)
        if principal is not None:
            request[USER] = principal.user_id
        return principal

    def caller(self, request: web.Request) -> Principal:
        principal = self.bearer.principal(request.headers.get("Authorization"), required=True)
        assert principal is not None
        request[USER] = principal.user_id  # as `principal` does (its call spared)
        return principal

    def scoped(self, request: web.Request, scope: str) -> Principal:
        principal = self.bearer.scoped(request.headers.get("Authorization"), scope)
        request[USER] = principal.user_id
        return principal

    def administrator(self, request: web.Request) -> bool:
        """Whether the request carries an administrator's token (never a refusal: for
        routes that show more to an administrator than to anyone else)."""
        if "Authorization" not in request.headers:
            return False
        try:
            self.scoped(request, self.settings.auth.admin_scope)
        except EdgeRefusal:
            return False
        return True

    def reader(self, request: web.Request) -> Principal | None:
        public = self.settings.leaderboard.public
        if public and "Authorization" not in request.headers:
            return None  # an anonymous reader of a public board: nothing to check
        return self.principal(request, required=not public)

    def limit(self, request: web.Request, user_id: str | None) -> Verdict | None:
        if not self.ip_limiter.enabled and (user_id is None or not self.user_limiter.enabled):
            return None  # no limit applies: the clock and the caller's address go unread
        now = time.monotonic()
        verdict = None
        if self.ip_limiter.enabled:
            verdict = self.ip_limiter.hit(self.addresses.of(request), now)
        if user_id is not None and self.user_limiter.enabled and (
            verdict is None or verdict.allowed
        ):
            verdict = self.user_limiter.hit(user_id, now)
        if verdict is not None and not verdict.allowed:
            self.metrics.rate_limited()
            raise RateLimited("too many requests", retry_after=verdict.retry_after,
                              headers=verdict.headers())
        return verdict

    async def json_body(self, request: web.Request, cap: int | None = None) -> bytes:
        """The JSON body's bytes, at most `cap` (`limits.max_body_bytes`); its reader
        (`scoreboard.edge.validation.BodyReader`) decodes and checks it."""
        body = self.json_body_now(request, cap)
        if body is not None:
            return body
        return await read_body(request, cap or self.settings.limits.max_body_bytes,
                               self.settings.edge)

    def json_body_now(self, request: web.Request, cap: int | None = None) -> bytes | None:
        """`json_body` when the body came whole with its head (nearly every JSON body),
        with no coroutine to run; None when some of it is still on its way."""
        ctype = request.headers.get("Content-Type", "")
        if ctype != JSON:  # else spelled otherwise, or with a charset
            mime, _, params = ctype.partition(";")
            charset = params.strip().lower()
            if mime.strip().lower() != JSON or (charset and charset not in ("charset=utf-8",)):
                raise UnsupportedMediaType("send application/json (UTF-8)")
        return body_at_hand(request, cap or self.settings.limits.max_body_bytes)


class PublicApi:
    def __init__(self, gate: Gatekeeper, writer: Submitter, views: Views,
                 proofs: ProofAuthority, progress: Progress | None = None,
                 archive: PeriodReads | None = None) -> None:
        self.gate = gate
        self.archive = archive  # closed periods' standings (`period=`)
        self.settings = gate.settings
        self.metrics = gate.metrics
        self.writer = writer
        self.views = views
        self.proofs = proofs
        self.progress = progress
        self._answers = TopAnswers()
        # query strings that ask only for a current top: (board, limit), as parsed once
        self._plain: dict[str, tuple[str, int]] = {}

    def add_routes(self, routes: Routes) -> None:
        routes.add_post(c.ACTIONS_PATH, self.post_action)
        routes.add_get(c.LEADERBOARD_PATH, self.get_leaderboard)
        routes.add_get(c.AROUND_PATH, self.get_around)
        routes.add_get(c.MY_SCORE_PATH, self.get_user_score)
        routes.add_get(c.USER_SCORE_PATH, self.get_user_score)

    def ranking(self, board: str | None) -> Ranking:
        """The board named (`global` when none is), or 400 / 404."""
        name = v.board_name(board)
        ranking = self.views.ranking(name)
        if ranking is None:
            raise UnknownResource(f"no board {name!r}")
        return ranking

    async def caught_up(self, request: web.Request) -> Ranking:
        """The asked board's ranking as it stands once `minSeq` is applied here: answer
        only from a state that includes that seq (waiting a bounded time on a follower),
        so a client reads its own write wherever it reads. The board is looked up after
        the wait: the seq may be the one that defined it, and a period that closed
        meanwhile put a new ranking in its place."""
        board = request.query.get("board")
        raw = request.query.get("minSeq")
        if raw is None or self.progress is None:
            return self.ranking(board)
        v.board_name(board)  # a malformed name is 400 at once
        return await self.ranking_at(board, v.int_param(raw, "minSeq", 0, 0, c.MAX_SEQ))

    async def ranking_at(self, board: str | None, seq: int | None) -> Ranking:
        """The board once `seq` is applied here (`caught_up`, for a seq already read)."""
        if seq is None or self.progress is None:
            return self.ranking(board)
        v.board_name(board)
        patience = self.progress.patience
        if await self.progress.wait(seq, patience):
            return self.ranking(board)
        if patience <= 0:  # the writer: it has applied every committed seq
            raise UnknownResource(f"seq {seq} has not been committed")
        raise Unavailable(f"seq {seq} is not applied here yet", retry_after=1.0)

    async def post_action(self, request: web.Request) -> web.StreamResponse:
        gate = self.gate
        principal = gate.caller(request)
        verdict = gate.limit(request, principal.user_id)
        raw = gate.json_body_now(request)
        body = ACTION_BODY.read(await gate.json_body(request) if raw is None else raw)
        request[ACTION] = (body.action_type, body.client_action_id)
        # `report`, with the writer awaited here: one coroutine less on every action
        cmd = self.command(principal, body)  # its refusals are not counted as actions'
        try:
            result = await self.writer.submit(cmd)
        except Refused as exc:
            self.metrics.action(exc.code)
            raise
        reply = ReadyReply(ACTION_REPLY, action_json(self.counted(result)))
        if verdict is not None:
            reply.headers.update(verdict.headers())
        return reply

    async def report(self, principal: Principal, body: ActionRequest) -> ActionResult:
        """The caller's action through the writer: metadata and proof checked, then
        rules, quotas, frozen users and idempotency decided by the writer. Every
        transport that takes actions (REST, GraphQL) comes through here, or through its
        two halves (`command`, `counted`) around its own await of the writer."""
        decided = self.writer.submit(self.command(principal, body))
        try:
            result = await decided
        except Refused as exc:
            self.metrics.action(exc.code)
            raise
        return self.counted(result)

    def command(self, principal: Principal, body: ActionRequest) -> SubmitAction:
        """The writer's command for the caller's action, its metadata and proof checked."""
        board = body.board or c.DEFAULT_BOARD
        metadata = v.metadata(body.metadata, self.settings.limits.max_metadata_bytes)
        proof = None
        if body.proof is not None:
            if len(body.proof) > self.settings.auth.max_token_bytes:
                raise ProofInvalid("proof: must be a compact JWS of at most "
                                   f"{self.settings.auth.max_token_bytes} bytes")
            proof = self.proofs.verify(body.proof, board=board)
        return SubmitAction(
            user_id=principal.user_id,
            display_name=principal.display_name,
            board=board,
            action_type=body.action_type,
            client_action_id=body.client_action_id,
            metadata=metadata,
            proof=proof,
        )

    def counted(self, result: Result) -> ActionResult:
        """The writer's answer to an action, counted as accepted or replayed."""
        assert isinstance(result, ActionResult)
        self.metrics.action("REPLAYED" if result.replayed else "ACCEPTED")
        return result

    async def get_leaderboard(self, request: web.Request) -> web.StreamResponse:
        gate = self.gate
        gate.reader(request)
        gate.limit(request, None)
        plain = self._plain.get(request.rel_url.raw_query_string)
        if plain is not None:  # the busiest read there is: a board's current top
            ranking = self.views.ranking(plain[0])
            if ranking is not None:
                return self.top(request, ranking, plain[1])
        query = request.query
        lb = self.settings.leaderboard
        limit = v.int_param(query.get("limit"), "limit", lb.default_limit, 1, lb.max_limit)
        if len(query) > ("limit" in query):
            # board, minSeq, period or cursor asked (or a parameter nobody reads)
            ranking = await self.caught_up(request)
            data = await self.page(ranking, limit, query.get("period"), query.get("cursor"))
            if data is not None:  # a closed period's, or a later page: no ETag
                return json_response(orjson.dumps(data))
        else:
            ranking = self.ranking(None)
        if len(query) == len(PLAIN_TOP.intersection(query)):
            # each of board and limit at most once, nothing else: the same query
            # string asks for this board's top again, whatever its version then
            # (bounded: emptied when full, so the strings in use come back)
            if len(self._plain) >= PLAIN_SIZE:
                self._plain.clear()
            self._plain[request.rel_url.raw_query_string] = (ranking.board, limit)
        return self.top(request, ranking, limit)

    def top(self, request: web.Request, ranking: Ranking, limit: int) -> ReadyReply:
        """The board's current top (the cached public view), or 304 for its ETag."""
        reply = self.views.leaderboard(ranking, limit)
        _, ok, unchanged = self._answers.of(reply)
        if reply.etag in request.headers.get("If-None-Match", ""):
            return ReadyReply(unchanged)
        return ReadyReply(ok)

    async def page(self, ranking: Ranking, limit: int, period: str | None,
                   cursor: str | None) -> dict[str, Any] | None:
        """A GET /leaderboard page other than the current period's first: a closed
        period's (`period`, from the archive) or the one after `cursor`; None for that
        first page, which the caller takes from the top. Every transport pages here."""
        closed = self.closed_period(ranking, period)
        if closed is not None:
            after = None if cursor is None else page_cursor(
                cursor, ranking.board, Period(closed, 0.0, 0.0))
            return await self.archived().leaderboard(ranking.board, closed, after, limit)
        if cursor is not None:  # it moves with every change
            after = page_cursor(cursor, ranking.board, self.views.period(ranking.board))
            return self.views.page(ranking, after, limit)
        return None

    def closed_period(self, ranking: Ranking, period: str | None) -> str | None:
        """`period` as asked: None for the board's current period (or none asked), else
        the id of the period to read from the archive (400 for a malformed id)."""
        asked = v.period_id(period)
        if asked is None:
            return None
        current = self.views.period(ranking.board)
        return None if current is not None and current.id == asked else asked

    def archived(self) -> PeriodReads:
        if self.archive is None:
            raise UnknownResource("closed periods are not kept here")
        return self.archive

    def _target(self, request: web.Request, raw: str) -> Target:
        if raw == "me":
            return self.target(raw, self.gate.caller(request))
        return self.target(raw, self.gate.reader(request))

    def target(self, raw: str, principal: Principal | None) -> Target:
        """Whom a read is about: `me`, an id a public view shows (a hidden user's
        pseudonym), or a real id. A hidden user's real id is known only to that user and
        to administrators; to anyone else it is a user who is not there. `me` answers as
        the boards show the caller (so a page can find its own row). `principal` is the
        caller as the transport checked them (required for `me`)."""
        if raw == "me":
            if principal is None:
                raise Unauthorized("a bearer token is required")
            return Target(principal.user_id, principal.user_id, private=False, shown=True)
        asked = v.user_id(raw)
        pseudonyms = self.views.pseudonyms
        user_id = pseudonyms.resolve(asked)
        if user_id != asked:
            return Target(asked, user_id, private=False, shown=True)
        private = principal is not None and (
            principal.user_id == asked or self.settings.auth.admin_scope in principal.scopes)
        return Target(asked, asked, private, shown=private or not pseudonyms.is_hidden(asked))

    def around(self, target: Target, ranking: Ranking, radius: int) -> dict[str, Any]:
        """The GET /around object, or 404 for a user the caller may not see."""
        data = self.views.around(ranking, target.user_id, radius) if target.shown else None
        if data is None:
            raise target.missing(ranking)
        return data

    async def score(self, target: Target, ranking: Ranking,
                    period: str | None = None) -> dict[str, Any]:
        """The GET /users/{userId}/score object (of a closed `period`, from the archive,
        when one is asked), or 404."""
        closed = self.closed_period(ranking, period)
        data = None
        if target.shown and closed is not None:
            data = await self.archived().user_score(ranking.board, closed, target.user_id,
                                                    private=target.private)
        elif target.shown:
            data = self.views.user_score(ranking, target.user_id, private=target.private)
        if data is None:
            raise target.missing(ranking)
        return data

    async def get_around(self, request: web.Request) -> web.Response:
        target = self._target(request, request.match_info["userId"])
        self.gate.limit(request, None)
        ranking = await self.caught_up(request)
        radius = v.int_param(request.query.get("radius"), "radius", c.DEFAULT_RADIUS, 0,
                             self.settings.leaderboard.max_radius)
        return json_response(orjson.dumps(self.around(target, ranking, radius)))

    async def get_user_score(self, request: web.Request) -> web.Response:
        target = self._target(request, request.match_info.get("userId", "me"))
        self.gate.limit(request, None)
        ranking = await self.caught_up(request)
        return json_response(orjson.dumps(
            await self.score(target, ranking, request.query.get("period"))))


@dataclass(frozen=True, slots=True)
class Target:
    """The user a read asks about: as asked (`asked`, what a refusal may repeat) and as
    they are (`user_id`); `private` when the caller may see the real id, `shown` when
    the caller may see the user at all."""

    asked: str
    user_id: str
    private: bool
    shown: bool

    def missing(self, ranking: Ranking) -> UnknownResource:
        return UnknownResource(f"user {self.asked!r} is not on board {ranking.board!r}")
