"""The async Python client for trusted backends (SPEC §12): score actions single and
in batches with safe retries, the reads, and the event feed that resumes where it left
off. It imports nothing of the server; only `scoreboard.runtime` helpers."""

from scoreboard.client.client import ScoreboardClient, TokenProvider, new_action_id
from scoreboard.client.errors import ScoreboardConnectionError, ScoreboardError
from scoreboard.client.models import (
    ActionResult,
    Around,
    BatchAction,
    BatchResult,
    Entry,
    Event,
    ItemError,
    Leaderboard,
    UserScore,
)
from scoreboard.client.retry import RetryNote, RetryPolicy

__all__ = [
    "ActionResult", "Around", "BatchAction", "BatchResult", "Entry", "Event", "ItemError",
    "Leaderboard", "RetryNote", "RetryPolicy", "ScoreboardClient",
    "ScoreboardConnectionError", "ScoreboardError", "TokenProvider", "UserScore",
    "new_action_id",
]
