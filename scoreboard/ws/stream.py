"""The WebSocket endpoint (`websockets` library, its own port, the service's loop).

`GET /api/v1/leaderboard/live?board=global&limit=10`, token in `?token=` or
`Authorization: Bearer`. Everything that can refuse a connection happens in
`process_request`, before the upgrade, as a plain HTTP answer: 404 for another path
or board, 400 for a bad limit, 401 for a missing or bad token, 503 when a connection
cap is reached. The query string never reaches a log here.

An admitted socket gets CONNECTION_ACK and a LEADERBOARD_UPDATE snapshot, then
whatever the hub broadcasts. It is receive-only: the first data frame from the client
gets an ERROR message and a 1008 close, and so does a socket whose token is revoked or
expires (`LiveSessions`; the message says which). Pings keep it honest (`ping_interval`,
`ping_timeout`); shutdown closes every socket with 1001.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from urllib.parse import parse_qsl, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode
from websockets.http11 import Request, Response

from scoreboard.core.errors import Refused
from scoreboard.edge.admission import Gate, LiveRequest, Ticket
from scoreboard.edge.clients import ClientAddress
from scoreboard.edge.connections import ConnectionBudget
from scoreboard.edge.contract import LIVE_PATH, MAX_QUERY
from scoreboard.edge.cors import Cors, same_origin
from scoreboard.edge.envelope import RequestIds
from scoreboard.edge.errors import BadRequest, OriginForbidden, UnknownResource
from scoreboard.edge.sinks import WebSocketSink, when_gone
from scoreboard.live import messages
from scoreboard.live.hub import Hub
from scoreboard.live.sessions import LiveSessions
from scoreboard.runtime.metrics import Metrics
from scoreboard.settings.model import LiveSettings
from scoreboard.ws.handshake import Guard, GuardedConnection, bind, refusal_response

log = logging.getLogger("scoreboard.ws.stream")
# websockets' own per-connection logger. At DEBUG it would write each handshake's request
# line, query string (and so `?token=`) included; above INFO it skips a line per
# connection opened and closed. Errors still get through.
PROTOCOL_LOGGER = "scoreboard.ws.stream.protocol"

class LiveConnection(GuardedConnection):
    """A server connection that carries what its handshake admitted."""

    admitted: tuple[LiveRequest, Ticket] | None = None


class WebSocketEndpoint:
    def __init__(self, settings: LiveSettings, gate: Gate, hub: Hub,
                 ids: RequestIds, addresses: ClientAddress, budget: ConnectionBudget,
                 metrics: Metrics, *, sessions: LiveSessions | None = None,
                 cors: Cors | None = None,
                 own_ports: Callable[[], Iterable[int]] = tuple) -> None:
        self.settings = settings
        self.gate = gate
        self.hub = hub
        self.ids = ids
        self.addresses = addresses
        self.sessions = sessions or LiveSessions()
        self.cors = cors
        self.own_ports = own_ports  # the service's ports: its own page may connect
        self._closing: set[asyncio.Task[None]] = set()  # revoked sockets being closed
        self.connection_class = bind(
            LiveConnection, Guard(budget, metrics, ids, settings.handshake_timeout)
        )
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
            create_connection=self.connection_class,
            compression=None,  # one frame, byte for byte the same, for every client
            max_size=s.max_message_bytes,
            max_queue=1,
            ping_interval=s.ping_interval,
            ping_timeout=s.ping_timeout,
            close_timeout=s.close_timeout,
            # the backstop; the head itself has handshake_timeout (408)
            open_timeout=s.handshake_timeout + 1.0,
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
        if self._closing:
            await asyncio.wait(self._closing)

    # -- the handshake -------------------------------------------------------------------

    def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        try:
            target = urlsplit(request.path)
            if target.path != LIVE_PATH:
                raise UnknownResource("no such endpoint")
            origin = request.headers.get("Origin")
            if origin is not None and not self._origin_ok(origin, request.headers.get("Host")):
                raise OriginForbidden(f"the origin {origin!r} is not allowed")
            if len(target.query) > MAX_QUERY:
                raise BadRequest("the query string is too long")
            query = dict(parse_qsl(target.query, keep_blank_values=True))
            live = self.gate.check(query, request.headers.get("Authorization"), query_token=True)
            forwarded = request.headers.get("X-Forwarded-For")
            ticket = self.gate.admit(live, self.addresses.resolve(_peer(conn), forwarded))
        except Refused as exc:
            return refusal_response(exc, self.ids.take(request.headers.get("X-Request-ID")))
        assert isinstance(conn, LiveConnection)
        conn.admitted = (live, ticket)
        # Released when the TCP connection ends, whether or not the upgrade completes.
        when_gone(conn, lambda: self.gate.release(ticket))
        return None

    def _origin_ok(self, origin: str, host: str | None) -> bool:
        """Browsers send Origin; other clients usually do not, and are not asked."""
        if self.cors is not None and self.cors.allows(origin):
            return True
        return same_origin(origin, host, (self.port, *self.own_ports()))

    # -- one connection ------------------------------------------------------------------

    async def _handle(self, conn: ServerConnection) -> None:
        assert isinstance(conn, LiveConnection) and conn.admitted is not None
        live, _ticket = conn.admitted
        sink = WebSocketSink(conn)
        if not sink.is_open():  # closed before its handler ran
            return
        sink.limit_kernel_buffer(self.settings.socket_send_buffer)
        # The ACK and the snapshot are written synchronously, then the client is
        # registered: no broadcast can come between them.
        sink.write(messages.ws_text_frame(
            messages.ack(live.user_id, live.board, time.time(), self.settings.ping_interval)
        ))
        client = self.hub.join_ws(sink, live.board, live.limit)
        session = self.sessions.add(live.principal, lambda why: self._ended(conn, why))
        try:
            await conn.recv()  # returns only if the client sends a data frame
        except ConnectionClosed:
            return
        finally:
            self.sessions.remove(session)
            self.hub.leave_ws(client)
        # Receive-only: tell the client why, then close with a policy violation.
        try:
            await conn.send(messages.error("RECEIVE_ONLY", "this socket does not accept messages"),
                            text=True)
            await conn.close(CloseCode.POLICY_VIOLATION, "receive-only")
        except ConnectionClosed:
            pass


    def _ended(self, conn: ServerConnection, why: str) -> None:
        """The socket's token was revoked or expired: say `why` and close with 1008.
        The closing handshake is awaited by a task this endpoint owns (waited for in
        `stop`)."""
        task = asyncio.get_running_loop().create_task(self._close_ended(conn, why))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    @staticmethod
    async def _close_ended(conn: ServerConnection, why: str) -> None:
        try:
            await conn.send(messages.error("UNAUTHORIZED", why), text=True)
            await conn.close(CloseCode.POLICY_VIOLATION, why)
        except ConnectionClosed:
            pass


def _peer(conn: ServerConnection) -> str:
    address = conn.remote_address
    return str(address[0]) if isinstance(address, tuple) and address else "?"
