"""The HTTP API (aiohttp), base path /api/v1, per SPEC §4.

Handlers only translate: HTTP in, commands and queries to the writer and the views,
HTTP out. Every error leaves through the request envelope (`Routes`) in one JSON shape.
"""

from __future__ import annotations

import itertools
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from scoreboard import __version__
from scoreboard import validation as v
from scoreboard.actor import WriterError
from scoreboard.auth import AuthError, Principal
from scoreboard.core.commands import ActionResult, SubmitAction
from scoreboard.core.errors import QuotaExceeded, Rejection
from scoreboard.core.ranking import Ranking
from scoreboard.ratelimit import Verdict
from scoreboard.storage.base import StoreError
from scoreboard.views import iso

if TYPE_CHECKING:
    from scoreboard.service import Service

log = logging.getLogger("scoreboard.http")
access_log = logging.getLogger("scoreboard.access")

REQUEST_ID: web.RequestKey[str] = web.RequestKey("request_id", str)
ACTION: web.RequestKey[tuple[str, str]] = web.RequestKey("action", tuple)
USER: web.RequestKey[str] = web.RequestKey("user", str)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
JSON = "application/json"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}


def unauthorized(message: str) -> ApiError:
    return ApiError(401, "UNAUTHORIZED", message, {"WWW-Authenticate": "Bearer"})


def json_response(body: bytes, status: int = 200, headers: dict[str, str] | None = None
                  ) -> web.Response:
    return web.Response(body=body, status=status, content_type=JSON, headers=headers)


def action_json(r: ActionResult) -> bytes:
    """The reply to an accepted or replayed score change (user action or adjustment)."""
    return orjson.dumps({
        "userId": r.user_id, "board": r.board, "actionType": r.action_type, "delta": r.delta,
        "newScore": r.new_score, "rank": r.rank, "replayed": r.replayed, "seq": r.seq,
        "at": iso(r.at),
    })


def error_body(code: str, message: str, request_id: str) -> bytes:
    return orjson.dumps({"error": {"code": code, "message": message, "requestId": request_id}})


_STATUS_CODES = {
    400: "INVALID_REQUEST", 401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED", 413: "PAYLOAD_TOO_LARGE", 415: "UNSUPPORTED_MEDIA_TYPE",
}


class Routes:
    """Registers handlers inside the request envelope: request id, the one error shape,
    Connection: close while draining, and the access log.

    The envelope wraps each handler once, at registration, instead of being an aiohttp
    middleware: a middleware adds a partial, a context manager and a coroutine frame to
    every request, which cost a fifth of a top-10 GET. `finish()` adds the catch-all
    that answers unknown paths (404) and wrong methods (405) in the same shape.
    Generated ids are a random per-process prefix plus a counter: unique, and far
    cheaper than fresh OS randomness per request."""

    def __init__(self, app: web.Application, draining: Callable[[], bool]) -> None:
        self.app = app
        self._router = app.router
        self._draining = draining
        self._prefix = secrets.token_hex(4)
        self._counter = itertools.count(1)

    def add_get(self, path: str, handler: Handler) -> None:
        self._router.add_get(path, self.wrap(handler))

    def add_post(self, path: str, handler: Handler) -> None:
        self._router.add_post(path, self.wrap(handler))

    def add_put(self, path: str, handler: Handler) -> None:
        self._router.add_put(path, self.wrap(handler))

    def add_static(self, prefix: str, path: Path) -> None:
        self._router.add_static(prefix, path, append_version=False)

    def finish(self) -> None:
        """Register last: everything no other route takes."""
        resource = self._router.add_resource("/{tail:.*}")
        others = [r for r in self._router.resources() if r is not resource]

        async def unmatched(request: web.Request) -> web.StreamResponse:
            allowed: set[str] = set()
            for other in others:
                _, methods = await other.resolve(request)
                allowed |= methods
            if allowed:
                raise ApiError(405, "METHOD_NOT_ALLOWED", f"{request.method} is not allowed here",
                               {"Allow": ",".join(sorted(allowed))})
            raise ApiError(404, "NOT_FOUND", "no such endpoint")

        resource.add_route("*", self.wrap(unmatched))

    def wrap(self, handler: Handler) -> Handler:
        draining = self._draining
        prefix, counter = self._prefix, self._counter

        async def endpoint(request: web.Request) -> web.StreamResponse:
            started = time.perf_counter()
            rid = request.headers.get("X-Request-ID", "")
            if not rid or not _REQUEST_ID.match(rid):
                rid = f"{prefix}-{next(counter):x}"
            request[REQUEST_ID] = rid
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                if exc.status < 400:
                    raise  # a redirect is an answer, not an error
                response = _error_response(exc, rid)
            except Exception as exc:
                response = _error_response(exc, rid)
            response.headers["X-Request-ID"] = rid
            if draining():
                # The connection closes after this answer: say so, or a keep-alive client
                # sends its next request into a closing socket and cannot tell it was lost.
                response.force_close()
            if access_log.isEnabledFor(logging.INFO):
                _log_request(request, response.status, time.perf_counter() - started, rid)
            return response

        return endpoint


def _error_response(exc: Exception, rid: str) -> web.Response:
    """The one error shape for everything a handler raises."""
    if isinstance(exc, ApiError):
        return json_response(error_body(exc.code, exc.message, rid), exc.status, exc.headers)
    if isinstance(exc, Rejection):
        headers = {}
        if isinstance(exc, QuotaExceeded):
            headers["Retry-After"] = str(int(exc.retry_after + 0.999))
        return json_response(error_body(exc.code, exc.message, rid), exc.status, headers)
    if isinstance(exc, WriterError):
        return json_response(
            error_body(exc.code, exc.message, rid), exc.status,
            {"Retry-After": str(max(1, round(exc.retry_after)))},
        )
    if isinstance(exc, StoreError):  # a read that needs the database while it is down
        return json_response(
            error_body("STORE_UNAVAILABLE", f"the action log is unavailable: {exc}", rid), 503,
            {"Retry-After": "2"},
        )
    if isinstance(exc, web.HTTPException):  # aiohttp's own: too large, static 404
        code = _STATUS_CODES.get(exc.status, "INVALID_REQUEST")
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else {}
        return json_response(error_body(code, exc.reason, rid), exc.status, headers)
    log.exception("unhandled error", extra={"request_id": rid}, exc_info=exc)
    return json_response(error_body("INTERNAL", "internal error", rid), 500)




def _log_request(request: web.Request, status: int, seconds: float, rid: str) -> None:
    """One JSON line per request. The path is logged without its query string, so a
    token passed as `?token=` never reaches the log; headers are never logged."""
    fields: dict[str, object] = {
        "request_id": rid, "method": request.method, "path": request.path,
        "status": status, "ms": round(seconds * 1000, 3), "remote": request.remote,
    }
    user = request.get(USER)
    if user is not None:
        fields["user"] = user
    action = request.get(ACTION)
    if action is not None:
        fields["action_type"], fields["client_action_id"] = action
    access_log.info("request", extra=fields)


class Api:
    def __init__(self, service: Service) -> None:
        self.s = service
        self.settings = service.settings
        self.auth = service.auth
        self.views = service.views

    # -- helpers -------------------------------------------------------------------------

    def principal(self, request: web.Request, *, required: bool) -> Principal | None:
        header = request.headers.get("Authorization")
        if header is None:
            if required:
                self.s.metrics.auth_failure("missing")
                raise unauthorized("a bearer token is required")
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            self.s.metrics.auth_failure("malformed")
            raise unauthorized("the Authorization header must be 'Bearer <token>'")
        try:
            principal = self.auth.verify(token.strip())
        except AuthError as exc:
            self.s.metrics.auth_failure(exc.reason)
            raise unauthorized(exc.message) from None
        request[USER] = principal.user_id
        return principal

    def reader(self, request: web.Request) -> Principal | None:
        return self.principal(request, required=not self.settings.leaderboard.public)

    def board(self, request: web.Request) -> Ranking:
        name = v.board_name(request.query.get("board"))
        ranking = self.views.ranking(name)
        if ranking is None:
            raise ApiError(404, "NOT_FOUND", f"no board {name!r}")
        return ranking

    def client_ip(self, request: web.Request) -> str:
        remote = request.remote or "?"
        if remote in self.settings.server.trusted_proxies:
            forwarded = request.headers.get("X-Forwarded-For", "")
            first = forwarded.split(",")[0].strip()
            if first:
                return first
        return remote

    def limit(self, request: web.Request, user_id: str | None) -> Verdict | None:
        now = time.monotonic()
        verdict = None
        if self.s.ip_limiter.enabled:
            verdict = self.s.ip_limiter.hit(self.client_ip(request), now)
        if user_id is not None and self.s.user_limiter.enabled and (
            verdict is None or verdict.allowed
        ):
            verdict = self.s.user_limiter.hit(user_id, now)
        if verdict is not None and not verdict.allowed:
            self.s.metrics.rate_limited()
            raise ApiError(429, "RATE_LIMITED", "too many requests", verdict.headers())
        return verdict

    async def json_body(self, request: web.Request) -> dict[str, Any]:
        ctype = request.headers.get("Content-Type", "")
        mime, _, params = ctype.partition(";")
        charset = params.strip().lower()
        if mime.strip().lower() != JSON or (charset and charset not in ("charset=utf-8",)):
            raise ApiError(415, "UNSUPPORTED_MEDIA_TYPE", "send application/json (UTF-8)")
        cap = self.settings.limits.max_body_bytes
        if request.content_length is not None and request.content_length > cap:
            raise ApiError(413, "PAYLOAD_TOO_LARGE", f"the body limit is {cap} bytes")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise ApiError(413, "PAYLOAD_TOO_LARGE", f"the body limit is {cap} bytes") from None
        return v.parse_json_object(body)

    # -- handlers ------------------------------------------------------------------------

    async def post_action(self, request: web.Request) -> web.Response:
        principal = self.principal(request, required=True)
        assert principal is not None
        verdict = self.limit(request, principal.user_id)
        body = await self.json_body(request)
        v.reject_unknown(body, v.ACTION_FIELDS)
        action_type = v.string(body, "actionType", required=True, max_len=64)
        client_action_id = v.string(body, "clientActionId", required=True)
        board = v.board_name(v.string(body, "board", required=False, max_len=64))
        proof_token = v.string(body, "proof", required=False,
                               max_len=self.settings.auth.max_token_bytes, pattern=v.JWS)
        metadata = v.metadata(body, self.settings.limits.max_metadata_bytes)
        assert action_type is not None and client_action_id is not None
        proof = self.s.proofs.verify(proof_token) if proof_token is not None else None
        request[ACTION] = (action_type, client_action_id)
        cmd = SubmitAction(
            user_id=principal.user_id,
            display_name=principal.display_name,
            board=board,
            action_type=action_type,
            client_action_id=client_action_id,
            metadata=metadata,
            proof=proof,
        )
        try:
            result = await self.s.writer.submit(cmd)
        except (Rejection, WriterError) as exc:
            self.s.metrics.action(getattr(exc, "code", "ERROR"))
            raise
        assert isinstance(result, ActionResult)
        self.s.metrics.action("REPLAYED" if result.replayed else "ACCEPTED")
        return json_response(action_json(result),
                             headers=verdict.headers() if verdict else None)

    async def get_leaderboard(self, request: web.Request) -> web.Response:
        self.reader(request)
        self.limit(request, None)
        ranking = self.board(request)
        lb = self.settings.leaderboard
        limit = v.int_param(request.query.get("limit"), "limit", lb.default_limit, 1,
                            lb.max_limit)
        version, body = self.views.leaderboard(ranking, limit)
        etag = f'"{ranking.board}-{version}-{limit}"'
        headers = {"ETag": etag, "Cache-Control": "no-cache"}
        if etag in request.headers.get("If-None-Match", ""):
            return web.Response(status=304, headers=headers)
        return json_response(body, headers=headers)

    def _target(self, request: web.Request, raw: str) -> str:
        if raw == "me":
            principal = self.principal(request, required=True)
            assert principal is not None
            return principal.user_id
        self.reader(request)
        return v.user_id(raw)

    async def get_around(self, request: web.Request) -> web.Response:
        user_id = self._target(request, request.match_info["userId"])
        self.limit(request, None)
        ranking = self.board(request)
        radius = v.int_param(request.query.get("radius"), "radius", 5, 0,
                             self.settings.leaderboard.max_radius)
        data = self.views.around(ranking, user_id, radius)
        if data is None:
            raise ApiError(404, "NOT_FOUND", f"user {user_id!r} is not on board {ranking.board!r}")
        return json_response(orjson.dumps(data))

    async def get_user_score(self, request: web.Request) -> web.Response:
        user_id = self._target(request, request.match_info.get("userId", "me"))
        self.limit(request, None)
        ranking = self.board(request)
        data = self.views.user_score(ranking, user_id)
        if data is None:
            raise ApiError(404, "NOT_FOUND", f"user {user_id!r} is not on board {ranking.board!r}")
        return json_response(orjson.dumps(data))

    async def health(self, request: web.Request) -> web.Response:
        return json_response(orjson.dumps({"status": "ok", "version": __version__}))

    async def ready(self, request: web.Request) -> web.Response:
        ok = await self.s.is_ready()
        body = orjson.dumps({
            "status": "ready" if ok else "not ready",
            "store": "ok" if ok else "unavailable",
            "lastSeq": self.s.engine.last_seq,
        })
        return json_response(body, 200 if ok else 503)


def add_routes(routes: Routes, api: Api) -> None:
    p = "/api/v1"
    routes.add_post(f"{p}/scores/actions", api.post_action)
    routes.add_get(f"{p}/leaderboard", api.get_leaderboard)
    routes.add_get(f"{p}/leaderboard/around/{{userId}}", api.get_around)
    routes.add_get(f"{p}/users/me/score", api.get_user_score)
    routes.add_get(f"{p}/users/{{userId}}/score", api.get_user_score)
    routes.add_get("/health", api.health)
    routes.add_get("/ready", api.ready)
