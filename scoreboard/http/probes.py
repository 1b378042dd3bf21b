"""What load balancers, supervisors and Prometheus ask: `/health`, `/ready`, `/metrics`.

`/health` answers while the process can answer at all. `/ready` asks the service's
readiness check (the store reachable, every watched task alive, not draining) and
answers 503 with the reasons when any of it fails.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from scoreboard import __version__
from scoreboard.edge import contract as c
from scoreboard.edge.envelope import Routes, json_response
from scoreboard.runtime.metrics import CONTENT_TYPE_LATEST, Metrics

# (ready, details): details are shown on /ready either way.
Readiness = Callable[[], Awaitable[tuple[bool, dict[str, Any]]]]


class Probes:
    def __init__(self, readiness: Readiness, metrics: Metrics) -> None:
        self.readiness = readiness
        self.metrics = metrics
        self._health = orjson.dumps({"status": "ok", "version": __version__})

    def add_routes(self, routes: Routes) -> None:
        routes.add_get(c.HEALTH_PATH, self.health)
        routes.add_get(c.READY_PATH, self.ready)
        routes.add_get(c.METRICS_PATH, self.render_metrics)

    async def health(self, request: web.Request) -> web.Response:
        return json_response(self._health)

    async def ready(self, request: web.Request) -> web.Response:
        ok, details = await self.readiness()
        body = orjson.dumps({"status": "ready" if ok else "not ready", **details})
        return json_response(body, 200 if ok else 503)

    async def render_metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.render(),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})
