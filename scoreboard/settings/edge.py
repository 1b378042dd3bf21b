"""The service's edge with the outside world: socket deadlines and fair shares (`[edge]`)
and browsers on other origins (`[cors]`)."""

from __future__ import annotations

from typing import Annotated

from msgspec.structs import force_setattr

from scoreboard.settings.section import Section, key, refuse


class EdgeSettings(Section, frozen=True):
    """Deadlines and fair shares of the sockets; seconds and counts."""

    header_timeout: Annotated[float, key(
        "A request's line and headers must arrive within this long of the connection "
        "opening, or of the first byte of a later request on it (408).",
        ge=0.1, le=3600.0)] = 10.0
    body_timeout: Annotated[float, key("A whole request body must arrive within this (408).",
                                       ge=0.1, le=3600.0)] = 30.0
    body_read_timeout: Annotated[float, key("The longest wait between two reads of a body "
                                            "(408).", ge=0.1, le=3600.0)] = 10.0
    keepalive_timeout: Annotated[float, key("An idle keep-alive connection is closed after "
                                            "this long.", ge=0.1, le=86400.0)] = 60.0
    max_connections_per_ip: Annotated[int, key(
        "Open connections per client address, HTTP and WebSocket ports together (503 when "
        "full; trusted proxies are exempt; 0: no limit).", ge=0, le=1_000_000)] = 256
    reserved_fds: Annotated[int, key(
        "File descriptors kept back from clients (listeners, the database, logs, health "
        "checks); clients get the rest of the process's limit.", ge=16, le=1_000_000)] = 128


class CorsSettings(Section, frozen=True):
    """Browsers on other origins; no origins: CORS is off."""

    allow_origins: Annotated[frozenset[str], key(
        "Exact origins (\"https://app.example.com\") of browser apps on other origins; empty: "
        "off. The WebSocket handshake accepts these and the service's own. Credentials "
        "(cookies) are never allowed.")] = frozenset()
    max_age: Annotated[int, key("Preflights are answered for this long (seconds).",
                                ge=0, le=86400)] = 600

    def __post_init__(self) -> None:
        for origin in self.allow_origins:
            scheme, sep, rest = origin.partition("://")
            if (scheme not in ("http", "https") or not sep or not rest or "/" in rest
                    or origin != origin.strip() or "*" in origin):
                refuse("cors.allow_origins", f"{origin!r} is not an exact origin like "
                       "https://app.example.com (scheme, host, optional port; no path, no *)")
        force_setattr(self, "allow_origins", frozenset(o.lower() for o in self.allow_origins))
