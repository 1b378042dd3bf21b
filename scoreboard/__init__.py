"""Scoreboard: a live top-N leaderboard service on one asyncio loop."""

# The one place the version is written: pyproject.toml reads it from here, and it is
# reported by `--version`, GET /health, the scoreboard_build_info metric and the OpenAPI document.
__version__ = "0.2.0"
