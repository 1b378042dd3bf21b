"""Server-Sent Events: `GET /api/v1/leaderboard/stream?board=&limit=` (aiohttp).

Each event is `event: leaderboard`, `id: <version>`, `data: <the LEADERBOARD_UPDATE
data object>`. A snapshot comes first unless `Last-Event-ID` shows the client already
has the current top; comment lines keep idle streams open through proxies. Auth is the
leaderboard GET's (`Authorization: Bearer`, required unless the board is public); the
connection counts against the same caps as WebSockets.

The request handler is the client's one writer. It sleeps until the hub wakes it and
then sends its group's *newest* view, so a slow client skips versions instead of
queueing them, and its awaited writes hold up nobody else. A client whose unsent bytes
pass `send_buffer_cap`, or whose write does not finish within `stall_seconds`, is cut off.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from scoreboard.http.contract import STREAM_PATH
from scoreboard.http.envelope import Routes
from scoreboard.http.errors import Unavailable
from scoreboard.live import messages
from scoreboard.live.admission import SHUTDOWN_RETRY, Gate
from scoreboard.live.hub import Hub, SseClient
from scoreboard.live.messages import TopView
from scoreboard.live.sink import OVER, TransportSink, buffer_state
from scoreboard.settings import LiveSettings

log = logging.getLogger("scoreboard.live.sse")

RETRY_MS = 2000


class SseEndpoint:
    def __init__(self, settings: LiveSettings, gate: Gate, hub: Hub) -> None:
        self.settings = settings
        self.gate = gate
        self.hub = hub
        self.closing = False

    def add_routes(self, routes: Routes) -> None:
        routes.add_get(STREAM_PATH, self.stream)
        routes.app.on_shutdown.append(self._on_shutdown)

    async def _on_shutdown(self, app: web.Application) -> None:
        # aiohttp waits for running handlers after this; end the endless ones now.
        self.closing = True
        self.hub.close_sse()

    async def stream(self, request: web.Request) -> web.StreamResponse:
        if self.closing:
            raise Unavailable("the service is shutting down", retry_after=SHUTDOWN_RETRY)
        live = self.gate.check(
            request.query, request.headers.get("Authorization"), query_token=False
        )
        ticket = self.gate.admit(live)
        try:
            response = web.StreamResponse(
                headers={
                    "Content-Type": "text/event-stream; charset=utf-8",
                    "Cache-Control": "no-cache",
                    "X-Accel-Buffering": "no",  # nginx: pass events through at once
                }
            )
            await response.prepare(request)
            last_id = messages.parse_last_event_id(request.headers.get("Last-Event-ID"))
            client, snapshot = self.hub.join_sse(live.board, live.limit, last_id)
            try:
                await self._pump(request, response, client, snapshot)
            finally:
                self.hub.leave_sse(client)
        finally:
            self.gate.release(ticket)
        return response

    async def _pump(self, request: web.Request, response: web.StreamResponse,
                    client: SseClient, snapshot: TopView | None) -> None:
        first = messages.sse_retry(RETRY_MS)
        if snapshot is not None:
            first += snapshot.sse_event
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
            if client.closed:
                return
            current = client.group.current
            if client.version == current.version:
                continue
            # Taken before the write: a wake-up during it means there is something newer.
            client.version = current.version
            if not await self._write(request, response, current.sse_event):
                return

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
