"""Cross-origin requests from browser apps (SPEC §4 "Browsers on other origins").

Off unless `cors.allow_origins` lists exact origins. Then a request whose `Origin` is
listed gets `Access-Control-Allow-Origin` with that origin and the exposed headers, on
every answer (errors, SSE streams and the page included: they are added as the headers
go out), and `OPTIONS` on any API route is answered as a preflight. Every answer says
`Vary: Origin`, so a cache never hands one origin's answer to another. Credentials
(cookies) are never allowed: tokens travel in `Authorization`.

The same list decides which origins the WebSocket handshake accepts besides the
service's own (`allows`, and `same_origin` for the page the service serves itself).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from urllib.parse import urlsplit

from aiohttp import web

from scoreboard.edge.errors import OriginForbidden
from scoreboard.settings.edge import CorsSettings

ALLOW_HEADERS = ("Authorization", "Content-Type", "If-None-Match", "Last-Event-ID",
                 "X-Request-ID")
EXPOSE_HEADERS = ("ETag", "Retry-After", "RateLimit-Limit", "RateLimit-Remaining",
                  "RateLimit-Reset", "X-Request-ID")


class Cors:
    def __init__(self, settings: CorsSettings) -> None:
        self.origins = settings.allow_origins
        self.max_age = str(settings.max_age)
        self.expose = ", ".join(EXPOSE_HEADERS)
        self.allow_headers = ", ".join(ALLOW_HEADERS)

    @property
    def enabled(self) -> bool:
        return bool(self.origins)

    def allows(self, origin: str) -> bool:
        return origin.lower() in self.origins

    def install(self, app: web.Application) -> None:
        """Add the headers to every answer as it goes out (nothing at all when off)."""
        if self.enabled:
            app.on_response_prepare.append(self._on_prepare)

    async def _on_prepare(self, request: web.Request, response: web.StreamResponse) -> None:
        headers = response.headers
        vary = headers.get("Vary")
        if vary is None:
            headers["Vary"] = "Origin"
        elif "origin" not in vary.lower():
            headers["Vary"] = f"{vary}, Origin"
        origin = request.headers.get("Origin")
        if origin is not None and origin.lower() in self.origins:
            headers["Access-Control-Allow-Origin"] = origin
            if "Access-Control-Allow-Methods" not in headers:  # not on preflights
                headers["Access-Control-Expose-Headers"] = self.expose

    def preflight(self, request: web.Request, methods: Collection[str]) -> web.Response | None:
        """The answer to `OPTIONS` on a route taking `methods`, or None when CORS is off
        or the request is no preflight (it is then a wrong method, as before)."""
        origin = request.headers.get("Origin")
        wanted = request.headers.get("Access-Control-Request-Method")
        if not self.enabled or origin is None or wanted is None:
            return None
        if not self.allows(origin):
            raise OriginForbidden(f"the origin {origin!r} is not allowed")
        allowed = sorted({*methods, "OPTIONS"} - {"HEAD"})
        return web.Response(status=204, headers={
            "Access-Control-Allow-Methods": ", ".join(allowed),
            "Access-Control-Allow-Headers": self.allow_headers,
            "Access-Control-Max-Age": self.max_age,
        })


def same_origin(origin: str, host: str | None, own_ports: Iterable[int]) -> bool:
    """True when `origin` is the service's own: the very host a client reached (one
    origin behind a proxy), or the same host name on one of the service's own ports
    (the page, served from the HTTP port, opening the WebSocket port)."""
    if host is None:
        return False
    try:
        o = urlsplit(origin)
        h = urlsplit(f"//{host}")
        o_port, h_host = o.port, h.hostname
    except ValueError:
        return False
    if o.scheme not in ("http", "https") or o.hostname is None:
        return False
    if o.netloc.lower() == host.lower():
        return True
    default = 443 if o.scheme == "https" else 80
    return o.hostname == h_host and (o_port or default) in set(own_ports)
