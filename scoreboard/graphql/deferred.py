"""`/graphql` without Strawberry on the way to ready.

Importing Strawberry and its GraphQL core costs more than the rest of the service's
imports together, and every start pays for it, a restart included. So the routes are
added with the others (the router is fixed once the service starts) and lead to an
endpoint built afterwards: `build` starts its import in a thread once the service
listens, so the loop keeps answering meanwhile, and a request that comes before it is
done waits for it (a few hundred ms at most, once). Nothing here imports Strawberry.
"""

from __future__ import annotations

import asyncio
import logging
from importlib import import_module
from typing import TYPE_CHECKING

from aiohttp import web

from scoreboard.edge.envelope import Routes
from scoreboard.graphql.context import Parts

if TYPE_CHECKING:
    from scoreboard.graphql.endpoint import Endpoint

log = logging.getLogger("scoreboard.graphql")

GRAPHQL_PATH = "/graphql"
_MODULE = "scoreboard.graphql.endpoint"


class DeferredEndpoint:
    """The routes of `/graphql`, and the endpoint behind them once it is built."""

    def __init__(self, parts: Parts) -> None:
        self.parts = parts
        self._endpoint: Endpoint | None = None
        self._building: asyncio.Future[Endpoint] | None = None

    def add_routes(self, routes: Routes) -> None:
        routes.add_post(GRAPHQL_PATH, self._post)
        routes.add_get(GRAPHQL_PATH, self._socket, stream=True)
        routes.app.on_shutdown.append(self._close_sockets)

    def build(self) -> asyncio.Future[Endpoint]:
        """Start building the endpoint (once); the future it will be done in."""
        if self._building is None:
            self._building = asyncio.ensure_future(self._build())
        return self._building

    async def endpoint(self) -> Endpoint:
        """The endpoint, built first if it is not yet."""
        if self._endpoint is not None:
            return self._endpoint
        # shielded: a request that goes away does not stop the build for the others
        return await asyncio.shield(self.build())

    async def _build(self) -> Endpoint:
        module = await asyncio.to_thread(import_module, _MODULE)
        endpoint: Endpoint = module.Endpoint(self.parts)
        self._endpoint = endpoint
        log.debug("GraphQL endpoint ready")
        return endpoint

    async def _post(self, request: web.Request) -> web.StreamResponse:
        return await (await self.endpoint()).post(request)

    async def _socket(self, request: web.Request) -> web.StreamResponse:
        return await (await self.endpoint()).socket(request)

    async def _close_sockets(self, app: web.Application) -> None:
        if self._endpoint is not None:
            await self._endpoint.close_sockets()
