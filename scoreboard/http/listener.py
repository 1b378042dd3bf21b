"""The HTTP port's listener: aiohttp's connection handler, with deadlines, fair shares
and JSON refusals.

aiohttp offers no hook for what happens before a handler runs: the request head has
no deadline (only the keep-alive timer, which is meant for idle connections), nothing
counts connections per address, and the parser's refusals are answered as text/plain
by `RequestHandler.handle_error` (a long-standing open request upstream asks for a way
to customise them). So `EdgeHandler` subclasses `web.RequestHandler`, overriding its
public methods and calling the originals, and `EdgeSite` listens with it where
`web.TCPSite` would listen with the stock one; the application, its router, its
signals and the runner's graceful shutdown are aiohttp's, unchanged.

Per connection:

- `connection_made`: the connection takes a place in the `ConnectionBudget`, or is
  answered 503 (JSON, `Retry-After`) and closed. The head deadline starts.
- Head deadline (`edge.header_timeout`): from the connection's start, and on a
  keep-alive connection from the first byte of each later request, until the request
  head is parsed. When it passes, the client gets 408 and the connection closes.
  Idle keep-alive connections are aiohttp's (`edge.keepalive_timeout`).
- `handle_error`: the parser's refusals as the JSON error object with the right
  status (`scoreboard.http.refusals.parser_refusal`).
- `connection_lost`: the place is given back (only now: the socket is really gone),
  and whoever asked (`when_gone`, e.g. an SSE stream) is told.

aiohttp has no public way to learn that a request head was parsed, or that a
connection waits for its next request: `heads_parsed`, `waiting_for_request` and
`handling_request` read the three attributes of its handler that say so (`_request_count`,
`_waiter`, `_messages`), and nothing else here touches aiohttp's privates. The aiohttp
versions they are tested with are pinned in pyproject.toml, and
tests/unit/test_listener_privates.py fails, saying what to do, if their meaning changes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.web_request import BaseRequest

from scoreboard.edge.connections import (
    RETRY_AFTER,
    ConnectionBudget,
    answer_and_linger,
    peer_ip,
)
from scoreboard.edge.contract import MAX_HEADER_FIELD, MAX_HEADERS, MAX_REQUEST_LINE
from scoreboard.edge.envelope import RequestIds
from scoreboard.edge.errors import (
    RequestTimeout,
    Unavailable,
    error_response,
)
from scoreboard.http.refusals import parser_refusal, raw_response
from scoreboard.runtime.metrics import Metrics
from scoreboard.settings.edge import EdgeSettings

log = logging.getLogger("scoreboard.edge")


@dataclass(eq=False)
class Edge:
    """What every connection of the port shares."""

    settings: EdgeSettings
    budget: ConnectionBudget
    metrics: Metrics
    ids: RequestIds

    def handler_args(self) -> dict[str, Any]:
        s = self.settings
        return {
            "access_log": None,  # the envelope writes the access log
            "keepalive_timeout": s.keepalive_timeout,
            # a body nobody reads is drained for at most this long, then the socket closes
            "lingering_time": min(2.0, s.body_read_timeout),
            "max_line_size": MAX_REQUEST_LINE,
            "max_field_size": MAX_HEADER_FIELD,
            "max_headers": MAX_HEADERS,
        }


class EdgeHandler(web.RequestHandler):
    def __init__(self, manager: web.Server, edge: Edge, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._edge = edge
        self._peer = "?"
        self._counted = False
        self._refused = False
        self._head_timer: asyncio.TimerHandle | None = None
        self._linger: asyncio.TimerHandle | None = None
        self._gone: list[Callable[[], None]] = []

    # -- the connection ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        edge = self._edge
        self._peer = peer_ip(transport)
        reason = edge.budget.take(self._peer)
        if reason is not None:
            # Refused before aiohttp knows of it: answered, closed, never parsed.
            self._refused = True
            edge.metrics.refused("cap", reason)
            refusal = Unavailable(ConnectionBudget.message(reason), retry_after=RETRY_AFTER)
            self._linger = answer_and_linger(transport, raw_response(refusal, edge.ids.take(None)))
            return
        self._counted = True
        super().connection_made(transport)
        self._arm_head()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._counted:
            self._counted = False
            self._edge.budget.give(self._peer)
        self._disarm_head()
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        gone, self._gone = self._gone, []
        for callback in gone:
            callback()
        if not self._refused:
            super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if not data and self._head_timer is None:
            # aiohttp resuming its parser (once per request body read): no byte arrived,
            # so no deadline starts, and none runs that a parsed head would end
            super().data_received(data)
            return
        starting = self._head_timer is None and waiting_for_request(self)
        before = heads_parsed(self)
        super().data_received(data)
        if heads_parsed(self) != before:
            if self._head_timer is not None:  # (most heads arrive whole: no timer)
                self._disarm_head()  # a head is complete
        elif starting and data:
            self._arm_head()  # the first byte of a new request

    def when_gone(self, callback: Callable[[], None]) -> None:
        """Call `callback` once the socket is closed (at once if it already is)."""
        if self._counted:
            self._gone.append(callback)
        else:
            callback()

    # -- the head deadline ---------------------------------------------------------------

    def _arm_head(self) -> None:
        if self._head_timer is None:
            self._head_timer = asyncio.get_running_loop().call_later(
                self._edge.settings.header_timeout, self._head_expired
            )

    def _disarm_head(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_expired(self) -> None:
        self._head_timer = None
        transport = self.transport
        if transport is None or transport.is_closing() or handling_request(self):
            return  # closed already, or a request is being handled
        edge = self._edge
        edge.metrics.refused("timeout", "header")
        seconds = edge.settings.header_timeout
        refusal = RequestTimeout(f"the request head did not arrive within {seconds:g} s")
        self.close()  # aiohttp takes no further request here and ignores the input
        self._linger = answer_and_linger(transport, raw_response(refusal, edge.ids.take(None)))

    # -- parser refusals -----------------------------------------------------------------

    def handle_error(self, request: BaseRequest, status: int = 500,
                     exc: BaseException | None = None, message: str | None = None
                     ) -> web.StreamResponse:
        if request.writer.output_size > 0:
            # As aiohttp does: an answer has begun, another cannot follow.
            raise ConnectionError("a response was already started")
        rid = self._edge.ids.take(None)
        if status >= 500:
            # Not the client's doing (a handler that escaped the envelope): logged, 500.
            response = error_response(exc or RuntimeError(message or "internal error"), rid)
        else:
            refusal = parser_refusal(exc)
            self._edge.metrics.refused("parser", refusal.code)
            log.debug("refused a malformed request from %s: %s", self._peer, exc)
            response = error_response(refusal, rid)
        response.headers["X-Request-ID"] = rid
        response.force_close()
        return response


class EdgeSite(web.BaseSite):
    """A TCP listener whose connections are `EdgeHandler`s of the runner's server.

    Only `BaseSite`'s public interface is used: its `start` and `stop` register the site
    with the runner (whose cleanup stops it), and the listening socket is this class's
    own, so the bound port is `port` (the runner's `addresses` do not list it)."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, edge: Edge, *,
                 backlog: int = 1024) -> None:
        super().__init__(runner)
        self.runner = runner
        self.host = host
        self.requested_port = port
        self.backlog = backlog
        self.edge = edge
        self.listening: asyncio.Server | None = None

    @property
    def name(self) -> str:
        return f"http://{self.host}:{self.requested_port}"

    @property
    def port(self) -> int:
        """The port listened on (the OS's choice when 0 was asked for); 0 before start."""
        for sock in self.listening.sockets if self.listening is not None else ():
            return int(sock.getsockname()[1])
        return 0

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        server = self.runner.server
        assert server is not None
        edge = self.edge
        args = edge.handler_args()

        def connection() -> EdgeHandler:
            return EdgeHandler(server, edge, loop=loop, **args)

        self.listening = await loop.create_server(
            connection, self.host, self.requested_port, backlog=self.backlog,
            reuse_address=True,
        )

    async def stop(self) -> None:
        listening, self.listening = self.listening, None
        if listening is not None:
            listening.close()  # no new connections; the runner shuts the others down
        await super().stop()


# -- what aiohttp keeps private (see the module's docstring) -----------------------------

def heads_parsed(handler: web.RequestHandler) -> int:
    """Request heads the handler's parser has produced on this connection."""
    return handler._request_count


def waiting_for_request(handler: web.RequestHandler) -> bool:
    """Its loop waits for a request: none is being handled and no parsed head is queued."""
    waiter = handler._waiter
    return waiter is not None and not waiter.done() and not handler._messages


def handling_request(handler: web.RequestHandler) -> bool:
    """A request is being handled, or a parsed head waits for its turn."""
    return handler._waiter is None or bool(handler._messages)


def when_gone(request: web.BaseRequest, callback: Callable[[], None]) -> bool:
    """Ask to be told when the request's connection is gone; False if it cannot tell."""
    protocol = request.protocol
    if isinstance(protocol, EdgeHandler):
        protocol.when_gone(callback)
        return True
    return False
