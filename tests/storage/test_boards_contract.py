"""Boards with time in every `ActionLog` backend (memory, SQLite, PostgreSQL): actions on
followed boards stored and replayed. No mocks; no sleeps."""

from __future__ import annotations

from scoreboard.core.records import BoardScore, ScoreRow
from scoreboard.storage import ActionLog
from tests.storage.test_contract import backend, batch, everything, load, rec, store

__all__ = ["backend", "store"]  # the contract's fixtures, over the three backends


async def test_an_action_on_followed_boards_is_stored_and_read_back(store: ActionLog) -> None:
    followed = rec(1, board="daily", also=(BoardScore("weekly", 10, 20),
                                           BoardScore("season", 0, 10)))
    plain = rec(2)
    scores = [ScoreRow("daily", "u1", 10, 1), ScoreRow("weekly", "u1", 20, 1),
              ScoreRow("season", "u1", 10, 1), ScoreRow("main", "u1", 20, 2)]
    await store.append(batch(followed, plain, scores=scores))
    assert await everything(store) == [followed, plain]
    assert await store.find_actions([("u1", "c1")]) == [followed]
    assert await store.history("u1", before_seq=None, limit=5) == [plain, followed]
    assert (await load(store, 0.0)).recent == [followed, plain]
