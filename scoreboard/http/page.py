"""The live leaderboard page: `/`, its static files, and `/api/v1/live-config`.

Plain files from `scoreboard/static/`, no build step; the live connection is the
JavaScript SDK's (`clients/js/src`, served at `/static/sdk/`). `index.html` gets the live
settings rendered into data attributes on `<html>` (so the page needs no extra round
trip), and `/api/v1/live-config` serves the same as JSON for other clients:

- `wsUrl`: `live.public_ws_url` when set (absolute `ws(s)://…`, or a path the page
  resolves against its own origin — for a reverse proxy putting both ports on one
  origin), else empty and the page uses `ws(s)://<its host>:<wsPort><wsPath>`.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from scoreboard.edge.contract import (
    LEADERBOARD_PATH,
    LIVE_CONFIG_PATH,
    LIVE_PATH,
    MY_SCORE_PATH,
    PAGE_PATH,
    STATIC_PREFIX,
    STREAM_PATH,
)
from scoreboard.edge.envelope import Routes
from scoreboard.settings.model import Settings

STATIC_DIR = Path(str(resources.files("scoreboard") / "static"))  # package data
# The JavaScript SDK the page is built on. In the source tree `static/sdk` is a symlink to
# clients/js/src (one copy of the SDK); a wheel holds the files themselves. Served from
# its resolved folder, so the static route needs no symlink following.
SDK_DIR = (STATIC_DIR / "sdk").resolve()

# The page talks to this origin and to the WebSocket port; nothing else.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self' ws: wss:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


class Page:
    def __init__(self, settings: Settings, ws_port: Callable[[], int]) -> None:
        self.settings = settings
        self.ws_port = ws_port
        self._template = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
        self._rendered: tuple[int, bytes] | None = None

    def add_routes(self, routes: Routes) -> None:
        routes.add_get(PAGE_PATH, self.index)
        routes.add_get(LIVE_CONFIG_PATH, self.config)
        routes.add_static(f"{STATIC_PREFIX}sdk/", SDK_DIR)
        routes.add_static(STATIC_PREFIX, STATIC_DIR)

    def live_config(self) -> dict[str, Any]:
        lb = self.settings.leaderboard
        return {
            "wsUrl": self.settings.live.public_ws_url,
            "wsPort": self.ws_port(),
            "wsPath": LIVE_PATH,
            "ssePath": STREAM_PATH,
            "pollPath": LEADERBOARD_PATH,
            "mePath": MY_SCORE_PATH,
            "board": "global",
            "limit": min(10, lb.max_limit),
            "public": lb.public,
        }

    def render(self) -> bytes:
        port = self.ws_port()
        if self._rendered is None or self._rendered[0] != port:
            attrs = " ".join(
                f'data-{name}="{html.escape(str(value), quote=True)}"'
                for name, value in (
                    ("ws-url", self.settings.live.public_ws_url),
                    ("ws-port", port),
                    ("ws-path", LIVE_PATH),
                    ("sse-path", STREAM_PATH),
                    ("poll-path", LEADERBOARD_PATH),
                    ("me-path", MY_SCORE_PATH),
                    ("board", "global"),
                    ("limit", min(10, self.settings.leaderboard.max_limit)),
                )
            )
            body = self._template.replace("{{LIVE_ATTRS}}", attrs).encode("utf-8")
            self._rendered = (port, body)
        return self._rendered[1]

    async def index(self, request: web.Request) -> web.Response:
        return web.Response(
            body=self.render(),
            content_type="text/html",
            charset="utf-8",
            headers={"Cache-Control": "no-cache", "Content-Security-Policy": CSP,
                     "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"},
        )

    async def config(self, request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(self.live_config()), content_type="application/json",
                            headers={"Cache-Control": "no-cache"})
