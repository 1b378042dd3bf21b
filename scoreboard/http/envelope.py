"""The request envelope: what every HTTP answer goes through, whoever handles it.

A request id (the client's `X-Request-ID` when well formed, else generated), the one
error shape for anything a handler raises, `Connection: close` while the service
drains, and one JSON access-log line per request.

The envelope wraps each handler once, at registration, instead of being an aiohttp
middleware: a middleware adds a partial, a context manager and a coroutine frame to
every request, which cost a fifth of a top-10 GET. `Routes.finish()` adds the
catch-all that answers unknown paths (404) and wrong methods (405) in the same shape.
Generated ids are a random per-process prefix plus a counter: unique, and far cheaper
than fresh OS randomness per request.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from scoreboard.http.contract import REQUEST_ID_RE
from scoreboard.http.errors import JSON, MethodNotAllowed, UnknownResource, error_response

access_log = logging.getLogger("scoreboard.access")

REQUEST_ID: web.RequestKey[str] = web.RequestKey("request_id", str)
ACTION: web.RequestKey[tuple[str, str]] = web.RequestKey("action", tuple)
USER: web.RequestKey[str] = web.RequestKey("user", str)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_response(body: bytes, status: int = 200, headers: dict[str, str] | None = None
                  ) -> web.Response:
    return web.Response(body=body, status=status, content_type=JSON, headers=headers)


class RequestIds:
    """Request ids: the client's when well formed, else a per-process prefix + counter."""

    def __init__(self) -> None:
        self._prefix = secrets.token_hex(4)
        self._counter = itertools.count(1)

    def take(self, offered: str | None) -> str:
        if offered and REQUEST_ID_RE.match(offered):
            return offered
        return f"{self._prefix}-{next(self._counter):x}"


class Routes:
    """Registers handlers inside the request envelope."""

    def __init__(self, app: web.Application, draining: Callable[[], bool],
                 ids: RequestIds | None = None) -> None:
        self.app = app
        self._router = app.router
        self._draining = draining
        self.ids = ids or RequestIds()

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
                raise MethodNotAllowed(f"{request.method} is not allowed here", allowed)
            raise UnknownResource("no such endpoint")

        resource.add_route("*", self.wrap(unmatched))

    def wrap(self, handler: Handler) -> Handler:
        draining = self._draining
        take_id = self.ids.take

        async def endpoint(request: web.Request) -> web.StreamResponse:
            started = time.perf_counter()
            rid = take_id(request.headers.get("X-Request-ID"))
            request[REQUEST_ID] = rid
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                if exc.status < 400:
                    raise  # a redirect is an answer, not an error
                response = error_response(exc, rid)
            except Exception as exc:
                response = error_response(exc, rid)
            response.headers["X-Request-ID"] = rid
            if draining():
                # The connection closes after this answer: say so, or a keep-alive client
                # sends its next request into a closing socket and cannot tell it was lost.
                response.force_close()
            if access_log.isEnabledFor(logging.INFO):
                _log_request(request, response.status, time.perf_counter() - started, rid)
            return response

        return endpoint


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
