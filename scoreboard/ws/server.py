"""`LiveServer`: the live-update parts, for the service to start, watch and stop.

Start: the WebSocket port opens (before the HTTP port, so the page never renders an
unknown WebSocket port); the service runs `hub.run()` as a watched task. Stop, after
the writer has drained: refuse new live connections, hand the last committed top to
every viewer, close every WebSocket with 1001 and wait for their handlers, end the SSE
streams. SSE streams are ended earlier, in aiohttp's `on_shutdown` (aiohttp waits for
running handlers before its cleanup returns), once the requests in flight are answered:
so they too end on the last committed top.
"""

from __future__ import annotations

from scoreboard.edge.admission import Gate
from scoreboard.edge.bearer import Bearer
from scoreboard.edge.clients import ClientAddress
from scoreboard.edge.connections import ConnectionBudget, client_budget, descriptor_limit
from scoreboard.edge.cors import Cors
from scoreboard.edge.envelope import RequestIds, Routes
from scoreboard.http.page import Page
from scoreboard.http.sse import SseEndpoint
from scoreboard.live.hub import Hub
from scoreboard.live.sessions import LiveSessions
from scoreboard.read.views import Views
from scoreboard.runtime.metrics import Metrics
from scoreboard.settings.model import Settings
from scoreboard.ws.stream import WebSocketEndpoint


class LiveServer:
    def __init__(self, settings: Settings, bearer: Bearer, views: Views, metrics: Metrics,
                 ids: RequestIds, *, addresses: ClientAddress | None = None,
                 budget: ConnectionBudget | None = None) -> None:
        self.settings = settings
        addresses = addresses or ClientAddress(settings.server.trusted_proxies)
        budget = budget or ConnectionBudget(
            client_budget(descriptor_limit(), settings.edge.reserved_fds),
            settings.edge.max_connections_per_ip, addresses.trusted,
        )
        cap = settings.live.max_connections
        self.gate = Gate(settings.leaderboard, settings.live, bearer, views,
                         max_total=min(cap, budget.total) if cap else 0,
                         on_refusal=lambda reason: metrics.refused("cap", reason))
        self.hub = Hub(views, settings.live, metrics)
        # a writer listener: revocations close connections; so do expiring tokens
        self.sessions = LiveSessions(settings.auth.leeway_seconds)
        self.http_port = 0  # set once HTTP listens: the page there may open the socket
        self.ws = WebSocketEndpoint(settings.live, self.gate, self.hub, ids, addresses,
                                    budget, metrics, sessions=self.sessions,
                                    cors=Cors(settings.cors),
                                    own_ports=lambda: (self.http_port,))
        self.sse = SseEndpoint(settings.live, self.gate, self.hub, addresses, self.sessions,
                               grace=settings.server.shutdown_grace)
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
