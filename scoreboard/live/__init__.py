"""Live updates: WebSocket and SSE fan-out of the leaderboard, and the page at `/`."""

from scoreboard.live.server import LiveServer

__all__ = ["LiveServer"]
