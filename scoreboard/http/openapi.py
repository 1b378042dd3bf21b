"""The OpenAPI 3.1 description of the HTTP API, served at `GET /openapi.json`, and
the page that renders it for people, `GET /docs` (`scoreboard.http.reference`).

Built once from the running settings (action types from the rules, boards, limits,
scopes, whether reads are public), encoded once, served as bytes: the paths from the
route table (`scoreboard.http.operations`), the components from the body Structs
(`scoreboard.http.components`), the error codes from the one error table. So a
request the document calls invalid is refused, and one it calls valid is not refused
as malformed — except where JSON Schema cannot say it: metadata size and depth, a
delta pushing a score out of range. `tests/integration/test_openapi.py` keeps the
document and the router in step and fuzzes every operation against a live server.
"""

from __future__ import annotations

import functools
from typing import Any

import orjson
from aiohttp import web

from scoreboard import __version__
from scoreboard.edge import contract as c
from scoreboard.edge.envelope import Routes
from scoreboard.edge.errors import JSON
from scoreboard.http import reference
from scoreboard.http.components import components
from scoreboard.http.operations import Operation, operations
from scoreboard.settings.model import Settings

TAGS = ("scores", "leaderboard", "users", "live", "events", "proofs", "admin", "operations")
INFO = {
    "title": "Scoreboard",
    "version": __version__,
    "summary": "A live top-N leaderboard",
    "description": (
        "Score actions are acknowledged only once durable; points come from "
        "server-side rules. Errors always have the shape "
        '`{"error": {"code", "message", "requestId"}}`. Live updates also go out '
        "over WebSocket on its own port "
        f"(`{c.LIVE_PATH}`, see `{c.LIVE_CONFIG_PATH}`), which OpenAPI cannot describe. "
        f"A browsable reference is at `{c.DOCS_PATH}`."
    ),
}
# The reference page loads its script and the document from this origin, nothing else.
DOCS_CSP = ("default-src 'none'; style-src 'self'; base-uri 'none'; form-action 'none'; "
            "frame-ancestors 'none'")


def paths(ops: list[Operation]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for op in ops:
        out.setdefault(op.path, {})[op.method] = op.spec()
    return out


def build_openapi(settings: Settings) -> dict[str, Any]:
    """The OpenAPI 3.1 document for a service running with `settings`."""
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "info": INFO,
        "servers": [{"url": "/"}],
        "tags": [{"name": name} for name in TAGS],
        "paths": paths(operations(settings)),
        "components": components(settings),
    }


def add_openapi_route(routes: Routes, settings: Settings) -> None:
    """Serve the document at GET /openapi.json and the page at /docs, each built and
    encoded on its first request, then kept: building them (schemas from the command
    and body types) is a tenth of a second that a start, a restart included, need
    not wait for."""

    @functools.cache
    def built() -> tuple[bytes, bytes]:  # (the document, the page)
        doc = build_openapi(settings)
        return orjson.dumps(doc), reference.render(doc, f"{c.STATIC_PREFIX}docs.css")

    async def openapi(request: web.Request) -> web.Response:
        return web.Response(body=built()[0], content_type=JSON,
                            headers={"Cache-Control": "no-cache"})

    async def docs(request: web.Request) -> web.Response:
        return web.Response(body=built()[1], content_type="text/html", charset="utf-8",
                            headers={"Cache-Control": "no-cache",
                                     "Content-Security-Policy": DOCS_CSP,
                                     "X-Content-Type-Options": "nosniff",
                                     "Referrer-Policy": "no-referrer"})

    routes.add_get(c.OPENAPI_PATH, openapi)
    routes.add_get(c.DOCS_PATH, docs)
