"""The request envelope: what every HTTP answer goes through, whoever handles it.

A request id (the client's `X-Request-ID` when well formed, else generated), the one
error shape for anything a handler raises, `Connection: close` while the service
drains, one JSON access-log line per request (naming the client's address through
trusted proxies), the per-route count and latency, and the count of requests in flight
that shutdown waits for (endless streams excepted).

The envelope wraps each handler once, at registration, instead of being an aiohttp
middleware: a middleware adds a partial, a context manager and a coroutine frame to
every request, which cost a fifth of a top-10 GET. `Routes.finish()` adds the
catch-all that answers unknown paths (404) and wrong methods (405) in the same shape.
Generated ids are a random per-process prefix plus a counter: unique, and far cheaper
than fresh OS randomness per request.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from multidict import CIMultiDict

from scoreboard.edge.contract import REQUEST_ID_RE
from scoreboard.edge.errors import JSON, MethodNotAllowed, UnknownResource, error_response
from scoreboard.runtime import logs
from scoreboard.runtime.metrics import Metrics

access_log = logging.getLogger("scoreboard.access")

ACTION: web.RequestKey[tuple[str, str]] = web.RequestKey("action", tuple)
USER: web.RequestKey[str] = web.RequestKey("user", str)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Answers OPTIONS on a route taking these methods (a CORS preflight), or None.
Preflight = Callable[[web.Request, set[str]], web.StreamResponse | None]


JSON_HEADERS = {"Content-Type": JSON}
# The same, as the kind aiohttp keeps: a Response copies its headers into a new
# CIMultiDict, and copies another CIMultiDict a third faster than a dict.
_JSON_ONLY = CIMultiDict(JSON_HEADERS)


def json_response(body: bytes, status: int = 200, headers: dict[str, str] | None = None
                  ) -> web.Response:
    # Content-Type as a header: aiohttp's `content_type=` path checks and builds more
    return web.Response(body=body, status=status,
                        headers={**headers, **JSON_HEADERS} if headers else _JSON_ONLY)


class RequestIds:
    """Request ids: the client's when well formed, else a per-process prefix + counter."""

    def __init__(self) -> None:
        self._prefix = secrets.token_hex(4)
        self._counter = itertools.count(1)

    def take(self, offered: str | None) -> str:
        if offered and REQUEST_ID_RE.match(offered):
            return offered
        return f"{self._prefix}-{next(self._counter):x}"


class InFlight:
    """Requests being handled (streams excepted), so shutdown can wait for them.

    The envelope adds to `count` itself (no method call per request); `leave()` wakes
    whoever waits once it is back to zero."""

    def __init__(self) -> None:
        self.count = 0
        self._idle: asyncio.Event | None = None  # only while someone waits

    def leave(self) -> None:
        self.count -= 1
        if not self.count and self._idle is not None:
            self._idle.set()

    async def settled(self) -> None:
        while self.count:
            self._idle = asyncio.Event()
            await self._idle.wait()
        self._idle = None


class Routes:
    """Registers handlers inside the request envelope."""

    def __init__(self, app: web.Application, draining: Callable[[], bool],
                 ids: RequestIds | None = None, *, metrics: Metrics | None = None,
                 client: Callable[[web.Request], str] | None = None) -> None:
        self.app = app
        self._router = app.router
        self._draining = draining
        self.ids = ids or RequestIds()
        self.metrics = metrics
        self.client = client or _peer
        self.inflight = InFlight()

    def add_get(self, path: str, handler: Handler, *, stream: bool = False) -> None:
        """`stream`: an endless response (SSE), not waited for at shutdown."""
        self._router.add_get(path, self.wrap(handler, path, stream=stream))

    def add_post(self, path: str, handler: Handler) -> None:
        self._router.add_post(path, self.wrap(handler, path))

    def add_put(self, path: str, handler: Handler) -> None:
        self._router.add_put(path, self.wrap(handler, path))

    def add_delete(self, path: str, handler: Handler) -> None:
        self._router.add_delete(path, self.wrap(handler, path))

    def finish(self, preflight: Preflight | None = None) -> None:
        """Register last: everything no other route takes, and CORS preflights."""
        resource = self._router.add_resource("/{tail:.*}")
        others = [r for r in self._router.resources() if r is not resource]

        async def unmatched(request: web.Request) -> web.StreamResponse:
            allowed: set[str] = set()
            for other in others:
                _, methods = await other.resolve(request)
                allowed |= methods
            if allowed and request.method == "OPTIONS" and preflight is not None:
                answer = preflight(request, allowed)
                if answer is not None:
                    return answer
            if allowed:
                raise MethodNotAllowed(f"{request.method} is not allowed here", allowed)
            raise UnknownResource("no such endpoint")

        resource.add_route("*", self.wrap(unmatched, "unmatched"))

    def wrap(self, handler: Handler, route: str = "", *, stream: bool = False) -> Handler:
        # Everything the envelope calls on each request is bound here, once per route.
        draining = self._draining
        take_id = self.ids.take
        client = self.client
        inflight = self.inflight
        observe = _route_metrics(self.metrics, route)
        clock = time.perf_counter
        logging_on = access_log.isEnabledFor
        info = logging.INFO
        counted = not stream

        async def endpoint(request: web.Request) -> web.StreamResponse:
            started = clock()
            rid = take_id(request.headers.get("X-Request-ID"))
            if counted:
                inflight.count += 1
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                if exc.status < 400:
                    raise  # a redirect is an answer, not an error
                response = error_response(exc, rid)
            except Exception as exc:
                response = error_response(exc, rid)
            finally:
                if counted:
                    inflight.leave()
            response.headers["X-Request-ID"] = rid
            if draining():
                # The connection closes after this answer: say so, or a keep-alive client
                # sends its next request into a closing socket and cannot tell it was lost.
                response.force_close()
            seconds = clock() - started
            if observe is not None:
                observe(request.method, response.status, seconds)
            if logging_on(info):
                _log_request(request, response.status, seconds, rid, client(request))
            return response

        return endpoint


def _peer(request: web.Request) -> str:
    return request.remote or "?"


def _route_metrics(metrics: Metrics | None, route: str
                   ) -> Callable[[str, int, float], None] | None:
    """Per-route count and latency (`scoreboard.runtime.route_stats`)."""
    return None if metrics is None else metrics.http.observer(route)


def _log_request(request: web.Request, status: int, seconds: float, rid: str,
                 remote: str) -> None:
    """One JSON line per request. The path is logged without its query string, so a
    token passed as `?token=` never reaches the log; headers are never logged."""
    fields: dict[str, object] = {
        "request_id": rid, "method": request.method, "path": request.path,
        "status": status, "ms": round(seconds * 1000, 3), "remote": remote,
    }
    if remote != request.remote:
        fields["peer"] = request.remote  # the proxy it came through
    user = request.get(USER)
    if user is not None:
        fields["user"] = user
    action = request.get(ACTION)
    if action is not None:
        fields["action_type"], fields["client_action_id"] = action
    logs.write(access_log, logging.INFO, "request", fields)
