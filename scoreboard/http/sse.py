"""Server-Sent Events: `GET /api/v1/leaderboard/stream?board=&limit=` (aiohttp).

Each event is `event: leaderboard`, `id: <version>`, `data: <the LEADERBOARD_UPDATE
data object>`. A snapshot comes first unless `Last-Event-ID` shows the client already
has the current top; comment lines keep idle streams open through proxies. Auth is the
leaderboard GET's (`Authorization: Bearer`, required unless the board is public); the
connection counts against the same caps as WebSockets.

The request handler is the client's one writer. It sleeps until the hub wakes it and
then sends its group's *newest* view, so a slow client skips versions instead of
queueing them, and its awaited writes hold up nobody else. A client whose unsent bytes
pass `send_buffer_cap`, or whose write does not finish within `stall_seconds`, is cut off
(aborted). The socket's kernel send buffer is kept small, so a client that stops reading
is seen within those limits; a client that hangs up wakes its writer at once (the
listener says when a connection is gone), not at the next heartbeat. Its place under the
caps is given back only when the socket is really closed.

Shutdown: new streams are refused, requests in flight are let finish (their commits
land), the hub is flushed, and each stream then gets the last committed top before it
ends — the same last top the WebSocket viewers get.

A stream whose token is revoked or expires (`LiveSessions`) ends with an `event: error`
whose data is `{"code": "UNAUTHORIZED", "message": <why>}`.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial

from aiohttp import web

from scoreboard.edge.admission import SHUTDOWN_RETRY, Gate
from scoreboard.edge.clients import ClientAddress
from scoreboard.edge.contract import STREAM_PATH
from scoreboard.edge.envelope import InFlight, Routes
from scoreboard.edge.errors import Unavailable
from scoreboard.edge.sinks import TransportSink, shrink_send_buffer
from scoreboard.http.listener import when_gone
from scoreboard.live import messages
from scoreboard.live.hub import Hub, SseClient
from scoreboard.live.messages import TopView
from scoreboard.live.sessions import LiveSessions
from scoreboard.live.sink import OVER, buffer_state
from scoreboard.settings.model import LiveSettings

log = logging.getLogger("scoreboard.http.sse")

RETRY_MS = 2000
RETRY = messages.sse_retry(RETRY_MS)


class SseEndpoint:
    def __init__(self, settings: LiveSettings, gate: Gate, hub: Hub,
                 addresses: ClientAddress, sessions: LiveSessions | None = None, *,
                 grace: float = 10.0) -> None:
        self.settings = settings
        self.gate = gate
        self.hub = hub
        self.addresses = addresses
        self.sessions = sessions or LiveSessions()
        self.grace = grace
        self.closing = False
        self.inflight: InFlight | None = None

    def add_routes(self, routes: Routes) -> None:
        routes.add_get(STREAM_PATH, self.stream, stream=True)
        self.inflight = routes.inflight
        routes.app.on_shutdown.append(self._on_shutdown)

    async def _on_shutdown(self, app: web.Application) -> None:
        # aiohttp waits for running handlers after this, so the endless ones end here:
        # once the requests in flight are answered (their changes committed), with the
        # last committed top.
        self.closing = True
        if self.inflight is not None:
            try:
                async with asyncio.timeout(self.grace):
                    await self.inflight.settled()
            except TimeoutError:
                log.warning("requests still in flight after %g s; ending streams", self.grace)
        self.hub.flush()
        self.hub.close_sse()

    async def stream(self, request: web.Request) -> web.StreamResponse:
        if self.closing:
            raise Unavailable("the service is shutting down", retry_after=SHUTDOWN_RETRY)
        live = self.gate.check(
            request.query, request.headers.get("Authorization"), query_token=False
        )
        ticket = self.gate.admit(live, self.addresses.of(request))
        release = partial(self.gate.release, ticket)  # once; idempotent
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",  # nginx: pass events through at once
            }
        )
        response.force_close()  # the connection ends with the stream
        try:
            await response.prepare(request)
        except BaseException:
            release()
            raise
        # From here the place is held until the socket is closed, not merely until this
        # handler returns (a cut-off client's socket may outlive it briefly).
        tracked = when_gone(request, release)
        if request.transport is not None:
            shrink_send_buffer(request.transport, self.settings.socket_send_buffer)
        last_id = messages.parse_last_event_id(request.headers.get("Last-Event-ID"))
        client, snapshot = self.hub.join_sse(live.board, live.limit, last_id, notices=True)
        when_gone(request, client.hang_up)
        # a revoked or expired token ends the stream: its writer wakes, sees `ending`
        # and sends it as an `error` event
        session = self.sessions.add(live.principal, client.end)
        try:
            await self._pump(request, response, client, snapshot)
            if client.ending is not None:
                await self._write(request, response,
                                  messages.sse_error("UNAUTHORIZED", client.ending))
        finally:
            self.sessions.remove(session)
            self.hub.leave_sse(client)
            if not tracked:
                release()
        return response

    async def _pump(self, request: web.Request, response: web.StreamResponse,
                    client: SseClient, snapshot: TopView | None) -> None:
        # the snapshot is the group's view, encoded once for every client that joins
        first = RETRY if snapshot is None else RETRY + snapshot.sse_event
        if not await self._write(request, response, first):
            return
        heartbeat = self.settings.sse_heartbeat
        while not client.closed:
            try:
                async with asyncio.timeout(heartbeat):
                    await client.wake.wait()
            except TimeoutError:
                if not await self._write(request, response, messages.SSE_HEARTBEAT):
                    return
                continue
            client.wake.clear()
            if client.ending is not None:
                return  # no more tops on a token that is no longer valid
            notices, client.notices = client.notices or [], []
            if notices and not await self._write(
                    request, response, b"".join(n.sse_event for n in notices)):
                return
            current = client.group.current
            if client.version == current.version:
                if client.closed:
                    return
                continue
            # Taken before the write: a wake-up during it means there is something newer.
            client.version = current.version
            if not await self._write(request, response, current.sse_event):
                return
            if client.closed:
                return  # shutdown: the last top is out

    async def _write(self, request: web.Request, response: web.StreamResponse,
                     data: bytes) -> bool:
        """Send `data`; False when the client is gone or was cut off."""
        why = await send(request, response, data, self.settings)
        if why is not None and why != GONE:
            self.hub.cut_off += 1
            log.info("cutting off a slow SSE client: %s", why)
        return why is None


GONE = "gone"


async def send(request: web.Request, response: web.StreamResponse, data: bytes,
               settings: LiveSettings) -> str | None:
    """Write `data` to an event stream under the slow-client rules. None when it was
    sent; else why not: `GONE`, or why the client was cut off (it is aborted)."""
    transport = request.transport
    if transport is None or transport.is_closing():
        return GONE
    sink = TransportSink(transport)
    if buffer_state(sink.buffered(), settings.send_buffer_cap) == OVER:
        sink.abort()
        return "its send buffer passed the cap"
    try:
        async with asyncio.timeout(settings.stall_seconds):
            await response.write(data)
    except TimeoutError:
        sink.abort()
        return f"a write did not finish in {settings.stall_seconds:g} s"
    except ConnectionError:
        return GONE
    return None
