"""`LiveServer`: the live-update parts, for the service to start, watch and stop.

Start: the WebSocket port opens (before the HTTP port, so the page never renders an
unknown WebSocket port); the service runs `hub.run()` as a watched task. Stop, after
the writer has drained: refuse new live connections, hand the last committed top to
every viewer, close every WebSocket with 1001 and wait for their handlers, end the SSE
streams. SSE streams are also ended in aiohttp's `on_shutdown`, because aiohttp waits
for running handlers before it returns from its cleanup.
"""

from __future__ import annotations

from scoreboard.http.bearer import Bearer
from scoreboard.http.envelope import RequestIds, Routes
from scoreboard.live.admission import Gate
from scoreboard.live.hub import Hub
from scoreboard.live.page import Page
from scoreboard.live.sse import SseEndpoint
from scoreboard.live.ws import WebSocketEndpoint
from scoreboard.metrics import Metrics
from scoreboard.settings import Settings
from scoreboard.views import Views


class LiveServer:
    def __init__(self, settings: Settings, bearer: Bearer, views: Views, metrics: Metrics,
                 ids: RequestIds) -> None:
        self.settings = settings
        self.gate = Gate(settings.leaderboard, settings.live, bearer, views)
        self.hub = Hub(views, settings.live, metrics)
        self.ws = WebSocketEndpoint(settings.live, self.gate, self.hub, ids)
        self.sse = SseEndpoint(settings.live, self.gate, self.hub)
        self.page = Page(settings, lambda: self.ws.port)

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

    async def stop(self) -> None:
        self.gate.closed = True
        self.hub.flush()  # the last committed changes go out before the 1001
        await self.ws.stop()
        self.hub.close_sse()
