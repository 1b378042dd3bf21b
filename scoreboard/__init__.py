"""Scoreboard: a live top-N leaderboard service on one asyncio loop."""

__version__ = "0.1.0"
