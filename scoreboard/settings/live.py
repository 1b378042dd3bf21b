"""WebSocket and SSE live updates (`[live]`)."""

from __future__ import annotations

from typing import Annotated

from scoreboard.settings.section import Section, key


class LiveSettings(Section, frozen=True):
    """WebSocket (server.ws_port) and SSE live updates."""

    broadcast_interval: Annotated[float, key(
        "At most one update per board per this many seconds; a change that leaves the top "
        "N as it was sends nothing.", ge=0.001, le=10.0)] = 0.05
    ping_interval: Annotated[float, key("The server pings every this many seconds.",
                                        ge=0.05, le=3600.0)] = 20.0
    ping_timeout: Annotated[float, key("No pong within this many seconds closes the socket.",
                                       ge=0.05, le=3600.0)] = 20.0
    close_timeout: Annotated[float, key(
        "How long a closing handshake may take before the socket is dropped (seconds).",
        ge=0.0, le=600.0)] = 2.0
    sse_heartbeat: Annotated[float, key(
        "Seconds between SSE comment lines, which keep proxies from closing an idle stream.",
        ge=0.05, le=3600.0)] = 15.0
    max_connections: Annotated[int, key(
        "WebSocket and SSE together; answered 503 at the handshake when full (0: no limit).",
        ge=0, le=1_000_000)] = 18000
    max_connections_per_user: Annotated[int, key("Live connections per user (0: no limit).",
                                                 ge=0, le=100_000)] = 5
    max_connections_per_ip: Annotated[int, key(
        "Live connections per client address, after trusted proxies (0: no limit).",
        ge=0, le=1_000_000)] = 100
    handshake_timeout: Annotated[float, key(
        "A WebSocket handshake must be complete this long after the connection opened (408).",
        ge=0.1, le=600.0)] = 10.0
    socket_send_buffer: Annotated[int, key(
        "Kernel send buffer of live sockets (bytes; 0 keeps the system's): small, so a client "
        "that stops reading shows up as unsent bytes at once.", ge=0, le=64 * 1024 * 1024)] = 16384
    send_buffer_cap: Annotated[int, key(
        "A client whose unsent bytes pass this is cut off (bytes).",
        ge=1024, le=64 * 1024 * 1024)] = 262144
    stall_seconds: Annotated[float, key(
        "A client whose send buffer has not drained for this long is cut off.",
        ge=0.05, le=3600.0)] = 10.0
    max_message_bytes: Annotated[int, key(
        "The socket is receive-only: a bigger client frame closes it with 1009, any other "
        "frame with 1008.", ge=128, le=1024 * 1024)] = 1024
    public_ws_url: Annotated[str, key(
        "The WebSocket URL the page uses; empty: ws://<page host>:<ws port>/api/v1/leaderboard"
        "/live. Behind a reverse proxy on one origin use a path.",
        pattern=r"^(wss?://|/|$)",
        expected="ws://…, wss://…, a path starting with / or empty")] = ""
