"""What load balancers, supervisors and Prometheus ask: `/health`, `/ready`, `/metrics`.

`/health` answers while the process can answer at all. `/ready` asks the service's
readiness check (the store reachable, every watched task alive, not draining) and
answers 503 with the reasons when any of it fails. `/ready` is public: the text of a
dependency's last error (which may name hosts, addresses or URLs) is shown only to an
administrator's token; anyone else reads that there is one, and the log has it.
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
# Whether a request carries an administrator's token.
Administrator = Callable[[web.Request], bool]

WITHHELD = "failing (the log has the cause; an administrator's token shows it here)"


def withheld(details: dict[str, Any]) -> dict[str, Any]:
    """`details` for anyone: each dependency's `error` text replaced by `WITHHELD`."""
    out = dict(details)
    for key, value in details.items():
        if isinstance(value, dict) and value.get("error") is not None:
            out[key] = {**value, "error": WITHHELD}
    return out


def nobody(request: web.Request) -> bool:
    return False


class Probes:
    def __init__(self, readiness: Readiness, metrics: Metrics,
                 administrator: Administrator = nobody) -> None:
        self.readiness = readiness
        self.administrator = administrator
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
        if not self.administrator(request):
            details = withheld(details)
        body = orjson.dumps({"status": "ready" if ok else "not ready", **details})
        return json_response(body, 200 if ok else 503)

    async def render_metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.render(),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})
