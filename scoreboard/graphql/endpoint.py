"""`/graphql` on the HTTP app: Strawberry's aiohttp view inside the request envelope.

POST runs a query or mutation (a JSON body of at most `graphql.max_body_bytes`, read
under the edge's deadlines); GET opens a graphql-transport-ws socket for the
subscription. Refusals of the request itself (no JSON, too large, a bad token, the
rate limit) are the JSON error shape with their HTTP status, like any route's; once a
document runs, its errors are GraphQL errors with the REST code in `extensions`.
Documents over the depth, alias or token caps are refused while parsing and
validating, before any resolver runs. With `graphql.enabled = false` no route is
added and the catch-all answers 404.

Sockets close with 1001 when the service shuts down, so they never hold up the drain.
The routes are `scoreboard.graphql.deferred`'s, which builds this endpoint after the
service is ready.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from aiohttp import web
from cross_web import AiohttpHTTPRequestAdapter, HTTPException
from strawberry.aiohttp.views import GraphQLView
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from scoreboard.edge.errors import (
    BadRequest,
    EdgeRefusal,
    MethodNotAllowed,
    UnknownResource,
)
from scoreboard.graphql.context import Context, Parts
from scoreboard.graphql.schema import build_schema

log = logging.getLogger("scoreboard.graphql")

CONNECTION_INIT_SECONDS = 10
CLOSING = 1001


BODY: web.RequestKey[bytes] = web.RequestKey("graphql_body", bytes)


class _BodyRead(AiohttpHTTPRequestAdapter):  # type: ignore[misc]
    """The request with the body the endpoint already read under its cap."""

    def __init__(self, request: web.Request) -> None:
        super().__init__(request, body=request.get(BODY))


class Endpoint(GraphQLView[Context, None]):
    """The view, its context built from the service's parts."""

    allow_queries_via_get = False
    request_adapter_class = _BodyRead  # type: ignore[assignment]

    def __init__(self, parts: Parts) -> None:
        settings = parts.settings.graphql
        super().__init__(
            build_schema(settings),
            graphql_ide=None,
            allow_queries_via_get=False,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            connection_init_wait_timeout=timedelta(seconds=CONNECTION_INIT_SECONDS),
            max_subscriptions_per_connection=settings.max_subscriptions,
        )
        self.parts = parts
        self.sockets: set[web.WebSocketResponse] = set()

    async def post(self, request: web.Request) -> web.StreamResponse:
        gate = self.parts.api.gate
        # the body within its cap and deadlines, kept where Strawberry reads it
        request[BODY] = await gate.json_body(request,
                                             self.parts.settings.graphql.max_body_bytes)
        return await self._run(request)

    async def socket(self, request: web.Request) -> web.StreamResponse:
        if not self.is_websocket_request(request):
            raise BadRequest("GET /graphql opens a graphql-transport-ws socket; "
                             "POST queries and mutations")
        response = await self._run(request)
        self.sockets.discard(response)  # type: ignore[arg-type]
        return response

    async def _run(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self.run(request=request)
        except HTTPException as exc:  # the library's own refusals, in our shape
            raise _refusal(exc.status_code, exc.reason) from None

    async def get_context(self, request: web.Request, response: Any) -> Context:
        context = Context(self.parts, request)
        if isinstance(response, web.WebSocketResponse):
            self.sockets.add(response)
        else:
            context.authenticate(request.headers.get("Authorization"))
        return context

    async def on_ws_connect(self, context: Context) -> None:
        """`connection_init`: the payload's `Authorization` (`Bearer …`), if any."""
        params = context.connection_params or {}
        authorization = params.get("Authorization", params.get("authorization"))
        if authorization is not None and not isinstance(authorization, str):
            raise ConnectionRejectionError({"code": "UNAUTHORIZED"})
        try:
            context.authenticate(authorization)
        except EdgeRefusal as exc:
            raise ConnectionRejectionError({"code": exc.code, "message": exc.message}) \
                from None

    async def close_sockets(self) -> None:
        for ws in list(self.sockets):
            await ws.close(code=CLOSING, message=b"the service is shutting down")
        self.sockets.clear()


def _refusal(status: int, reason: str) -> EdgeRefusal:
    if status == 405:
        return MethodNotAllowed(reason, {"GET", "POST"})
    if status == 404:
        return UnknownResource(reason)
    return BadRequest(reason)
