"""`LiveServer`: the live-update parts and their lifetimes, for `Service` to own.

Start: the WebSocket port opens and the broadcast task starts (before the HTTP port,
so the page never renders an unknown WebSocket port). Stop, in `Service.stop` after
the writer has drained: refuse new live connections, close every WebSocket with 1001
and wait for their handlers, then cancel and await the broadcast task. SSE streams end
earlier, in aiohttp's `on_shutdown`, because aiohttp waits for running handlers.
"""

from __future__ import annotations

import asyncio
import contextlib

from scoreboard.api import Routes
from scoreboard.auth import Authenticator
from scoreboard.live.admission import Gate
from scoreboard.live.hub import Hub
from scoreboard.live.page import Page
from scoreboard.live.sse import SseEndpoint
from scoreboard.live.ws import WebSocketEndpoint
from scoreboard.metrics import Metrics
from scoreboard.settings import Settings
from scoreboard.views import Views


class LiveServer:
    def __init__(self, settings: Settings, auth: Authenticator, views: Views,
                 metrics: Metrics) -> None:
        self.settings = settings
        self.gate = Gate(settings.leaderboard, settings.live, auth, views, metrics)
        self.hub = Hub(views, settings.live, metrics)
        self.ws = WebSocketEndpoint(settings.live, self.gate, self.hub)
        self.sse = SseEndpoint(settings.live, self.gate, self.hub)
        self.page = Page(settings, lambda: self.ws.port)
        self._hub_task: asyncio.Task[None] | None = None

    @property
    def ws_port(self) -> int:
        return self.ws.port

    def add_routes(self, routes: Routes) -> None:
        self.sse.add_routes(routes)
        self.page.add_routes(routes)

    async def start(self) -> None:
        server = self.settings.server
        self.gate.closed = False
        await self.ws.start(server.host, server.ws_port)
        self._hub_task = asyncio.create_task(self.hub.run(), name="live-hub")

    async def stop(self) -> None:
        self.gate.closed = True
        if self._hub_task is not None:
            self.hub.flush()  # the last committed changes go out before the 1001
        await self.ws.stop()
        self.hub.close_sse()
        task, self._hub_task = self._hub_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
