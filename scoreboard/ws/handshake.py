"""The WebSocket port before the upgrade: fair shares, a deadline, and every refusal in
the one JSON error format.

websockets answers what it refuses on its own (a request line or header over its
limits, too many headers, a request that is not a WebSocket handshake) with a plain
text body, and a head it cannot parse with no answer at all. `serve` lets us supply
the connection class (`create_connection`); ours, `GuardedConnection`, runs the
handshake on `JsonProtocol`, a `ServerProtocol` whose `reject` writes the JSON error
object and whose handshake parsing answers a bad head (400 or 431) instead of hanging
up. Per connection, like the HTTP port's listener:

- when the TCP connection opens it takes a place in the shared `ConnectionBudget`,
  or is answered 503 and closed;
- the handshake request must be complete within `live.handshake_timeout`, or the
  client gets 408 and the connection closes (websockets' own `open_timeout`, a little
  longer, remains the backstop for the whole handshake);
- the place is given back in `connection_lost`, when the socket is really gone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Generator
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import Server, ServerConnection
from websockets.datastructures import Headers
from websockets.exceptions import (
    HeaderLineTooLong,
    InvalidMessage,
    RequestLineTooLong,
    TooManyHeaders,
)
from websockets.http11 import MAX_LINE_LENGTH, MAX_NUM_HEADERS, Request, Response
from websockets.protocol import CONNECTING, Protocol
from websockets.server import ServerProtocol

from scoreboard.core.errors import Refused
from scoreboard.edge.connections import LINGER, RETRY_AFTER, ConnectionBudget, drop, peer_ip
from scoreboard.edge.envelope import RequestIds
from scoreboard.edge.errors import (
    BadRequest,
    EdgeRefusal,
    HeadersTooLarge,
    RequestTimeout,
    Unavailable,
    code_for_status,
    describe,
    error_body,
)
from scoreboard.runtime.metrics import Metrics

log = logging.getLogger("scoreboard.ws.stream")

_PREFIX = "Failed to open a WebSocket connection: "


def json_response(status: int, code: str, message: str, request_id: str,
                  extra: dict[str, str] | None = None) -> Response:
    """A handshake answer in the one error shape (SPEC §4)."""
    body = error_body(code, message, request_id)
    headers = Headers([
        ("Connection", "close"),
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(body))),
        ("X-Request-ID", request_id),
    ])
    for name, value in (extra or {}).items():
        headers[name] = value
    return Response(status, HTTPStatus(status).phrase, headers, body)


def refusal_response(exc: Refused, request_id: str) -> Response:
    """One of our refusals as a handshake answer."""
    status, code, message, extra = describe(exc)
    return json_response(status, code, message, request_id, extra)


def head_refusal(exc: BaseException) -> EdgeRefusal:
    """The refusal for a handshake head websockets could not parse."""
    if isinstance(exc, RequestLineTooLong):
        return BadRequest(f"the request line is longer than {MAX_LINE_LENGTH} bytes")
    if isinstance(exc, HeaderLineTooLong):
        return HeadersTooLarge(f"a header field is longer than {MAX_LINE_LENGTH} bytes")
    if isinstance(exc, TooManyHeaders):
        return HeadersTooLarge(f"more than {MAX_NUM_HEADERS} header fields")
    if isinstance(exc, NotImplementedError):  # Transfer-Encoding
        return BadRequest("a handshake has no body (Transfer-Encoding is not allowed)")
    return BadRequest("malformed HTTP request")


class JsonProtocol(ServerProtocol):
    """websockets' server protocol, refusing in JSON."""

    def __init__(self, ids: RequestIds, on_refusal: Callable[[str], None],
                 **kwargs: Any) -> None:
        self.ids = ids  # before super(): it starts the parser
        self.on_refusal = on_refusal
        super().__init__(**kwargs)

    def reject(self, status: int | HTTPStatus, text: str) -> Response:
        # websockets' own refusals: keep its reason, drop its boilerplate
        status = int(status)
        reason = text.strip().splitlines()[0] if text.strip() else HTTPStatus(status).phrase
        reason = reason.removeprefix(_PREFIX).rstrip(".")[:200]
        extra = {"Allow": "GET"} if status == 405 else {"Upgrade": "websocket"} \
            if status == 426 else None
        return json_response(status, code_for_status(status), reason, self.ids.take(None),
                             extra)

    def parse(self) -> Generator[None]:
        if self.state is CONNECTING:
            try:
                request = yield from Request.parse(self.reader.read_line)
            except EOFError as exc:  # the client left mid-head: nobody to answer
                self.handshake_exc = InvalidMessage("the client closed during the handshake")
                self.handshake_exc.__cause__ = exc
                self.send_eof()
                self.parser = self.discard()
                next(self.parser)
                yield
            except Exception as exc:
                self.handshake_exc = InvalidMessage("did not receive a valid HTTP request")
                self.handshake_exc.__cause__ = exc
                refusal = head_refusal(exc)
                self.on_refusal(refusal.code)
                self.send_response(refusal_response(refusal, self.ids.take(None)))
                yield  # send_response switched to discarding; this parser is done
            else:
                self.events.append(request)
        yield from Protocol.parse(self)


@dataclass(frozen=True, eq=False)
class Guard:
    """What every connection of the port shares."""

    budget: ConnectionBudget
    metrics: Metrics
    ids: RequestIds
    handshake_timeout: float


class GuardedConnection(ServerConnection):
    """A server connection with a place in the budget and a handshake deadline.

    `serve` builds connections from a class, so each endpoint makes a subclass that
    carries its `guard` (see `bind`).
    """

    guard: Guard

    def __init__(self, protocol: ServerProtocol, server: Server, **kwargs: Any) -> None:
        metrics = self.guard.metrics
        own = JsonProtocol(
            self.guard.ids,
            lambda code: metrics.refused("parser", code),
            origins=protocol.origins,
            extensions=protocol.available_extensions,
            subprotocols=protocol.available_subprotocols,
            max_size=(protocol.max_message_size, protocol.max_fragment_size),
            logger=protocol.logger,
        )
        super().__init__(own, server, **kwargs)
        self._peer = "?"
        self._counted = False
        self._deadline: asyncio.TimerHandle | None = None
        self._linger: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        guard = self.guard
        self._peer = peer_ip(transport)
        reason = guard.budget.take(self._peer)
        if reason is not None:
            guard.metrics.refused("cap", reason)
            self._refuse(Unavailable(ConnectionBudget.message(reason), retry_after=RETRY_AFTER))
            return
        self._counted = True
        self._deadline = self.loop.call_later(guard.handshake_timeout, self._expired)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._deadline is not None and self.request is not None:
            self._deadline.cancel()
            self._deadline = None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._counted:
            self._counted = False
            self.guard.budget.give(self._peer)
        for timer in (self._deadline, self._linger):
            if timer is not None:
                timer.cancel()
        self._deadline = self._linger = None
        super().connection_lost(exc)

    def _expired(self) -> None:
        self._deadline = None
        if self.request is not None or self.transport.is_closing():
            return
        self.guard.metrics.refused("timeout", "handshake")
        seconds = self.guard.handshake_timeout
        self._refuse(RequestTimeout(f"the handshake did not arrive within {seconds:g} s"))

    def _refuse(self, refusal: Refused) -> None:
        """Answer, half-close, and drop the socket after a short linger (the client's
        close ends it sooner; input meanwhile is discarded by the protocol)."""
        if self.protocol.state is CONNECTING and not self.protocol.eof_sent:
            self.protocol.send_response(refusal_response(refusal, self.guard.ids.take(None)))
            self.send_data()  # the answer, then EOF
        self._linger = self.loop.call_later(LINGER, drop, self.transport)


def bind(base: type[GuardedConnection], guard: Guard) -> type[GuardedConnection]:
    """A subclass of `base` whose connections share `guard`."""
    return type(base.__name__, (base,), {"guard": guard})
