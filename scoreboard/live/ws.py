"""The WebSocket endpoint (`websockets` library, its own port, the service's loop).

`GET /api/v1/leaderboard/live?board=global&limit=10`, token in `?token=` or
`Authorization: Bearer`. Everything that can refuse a connection happens in
`process_request`, before the upgrade, as a plain HTTP answer: 404 for another path
or board, 400 for a bad limit, 401 for a missing or bad token, 503 when a connection
cap is reached. The query string never reaches a log here.

An admitted socket gets CONNECTION_ACK and a LEADERBOARD_UPDATE snapshot, then
whatever the hub broadcasts. It is receive-only: the first data frame from the client
gets an ERROR message and a 1008 close. Pings keep it honest (`ping_interval`,
`ping_timeout`); shutdown closes every socket with 1001.
"""

from __future__ import annotations

import logging
import time
from http import HTTPStatus
from urllib.parse import parse_qsl, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode
from websockets.http11 import Request, Response

from scoreboard.core.errors import Refused
from scoreboard.http.contract import LIVE_PATH, MAX_QUERY
from scoreboard.http.envelope import RequestIds
from scoreboard.http.errors import BadRequest, UnknownResource, describe, error_body
from scoreboard.live import messages
from scoreboard.live.admission import Gate, LiveRequest, Ticket
from scoreboard.live.hub import Hub
from scoreboard.live.sink import WebSocketSink, when_gone
from scoreboard.settings import LiveSettings

log = logging.getLogger("scoreboard.live.ws")
# websockets' own per-connection logger. At DEBUG it would write each handshake's request
# line, query string (and so `?token=`) included; above INFO it skips a line per
# connection opened and closed. Errors still get through.
PROTOCOL_LOGGER = "scoreboard.live.ws.protocol"

class LiveConnection(ServerConnection):
    """A server connection that carries what its handshake admitted."""

    admitted: tuple[LiveRequest, Ticket] | None = None


def refusal_response(exc: Refused, request_id: str) -> Response:
    """A handshake refused as HTTP, in the one error shape (SPEC §4)."""
    status, code, message, extra = describe(exc)
    body = error_body(code, message, request_id)
    headers = Headers(
        [
            ("Connection", "close"),
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            ("X-Request-ID", request_id),
        ]
    )
    for name, value in extra.items():
        headers[name] = value
    return Response(status, HTTPStatus(status).phrase, headers, body)


class WebSocketEndpoint:
    def __init__(self, settings: LiveSettings, gate: Gate, hub: Hub,
                 ids: RequestIds | None = None) -> None:
        self.settings = settings
        self.gate = gate
        self.hub = hub
        self.ids = ids or RequestIds()
        self.server: Server | None = None
        self.port = 0
        self.logger = logging.getLogger(PROTOCOL_LOGGER)
        self.logger.setLevel(logging.WARNING)

    async def start(self, host: str, port: int) -> None:
        s = self.settings
        self.server = await serve(
            self._handle,
            host,
            port,
            process_request=self._process_request,
            create_connection=LiveConnection,
            compression=None,  # one frame, byte for byte the same, for every client
            max_size=s.max_message_bytes,
            max_queue=1,
            ping_interval=s.ping_interval,
            ping_timeout=s.ping_timeout,
            close_timeout=s.close_timeout,
            open_timeout=10,
            server_header=None,
            logger=self.logger,
            reuse_address=True,
            backlog=1024,  # bursts of reconnecting viewers after a restart
        )
        sockets = list(self.server.sockets)
        self.port = sockets[0].getsockname()[1] if sockets else 0

    async def stop(self) -> None:
        """Stop accepting, close every socket with 1001, wait for the handlers."""
        if self.server is None:
            return
        server, self.server = self.server, None
        server.close(close_connections=True, code=CloseCode.GOING_AWAY, reason="server shutdown")
        await server.wait_closed()

    # -- the handshake -------------------------------------------------------------------

    def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        try:
            target = urlsplit(request.path)
            if target.path != LIVE_PATH:
                raise UnknownResource("no such endpoint")
            if len(target.query) > MAX_QUERY:
                raise BadRequest("the query string is too long")
            query = dict(parse_qsl(target.query, keep_blank_values=True))
            live = self.gate.check(query, request.headers.get("Authorization"), query_token=True)
            ticket = self.gate.admit(live)
        except Refused as exc:
            return refusal_response(exc, self.ids.take(request.headers.get("X-Request-ID")))
        assert isinstance(conn, LiveConnection)
        conn.admitted = (live, ticket)
        # Released when the TCP connection ends, whether or not the upgrade completes.
        when_gone(conn, lambda: self.gate.release(ticket))
        return None

    # -- one connection ------------------------------------------------------------------

    async def _handle(self, conn: ServerConnection) -> None:
        assert isinstance(conn, LiveConnection) and conn.admitted is not None
        live, _ticket = conn.admitted
        sink = WebSocketSink(conn)
        if not sink.is_open():  # closed before its handler ran
            return
        # The ACK and the snapshot are written synchronously, then the client is
        # registered: no broadcast can come between them.
        sink.write(messages.ws_text_frame(
            messages.ack(live.user_id, live.board, time.time(), self.settings.ping_interval)
        ))
        client = self.hub.join_ws(sink, live.board, live.limit)
        try:
            await conn.recv()  # returns only if the client sends a data frame
        except ConnectionClosed:
            return
        finally:
            self.hub.leave_ws(client)
        # Receive-only: tell the client why, then close with a policy violation.
        try:
            await conn.send(messages.error("RECEIVE_ONLY", "this socket does not accept messages"),
                            text=True)
            await conn.close(CloseCode.POLICY_VIOLATION, "receive-only")
        except ConnectionClosed:
            pass
