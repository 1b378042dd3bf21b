"""The cached top-N reply: built once per (board, limit, version), its ETag and body always
of the same version, dropped when the board changes, bounded per board and in boards."""

from __future__ import annotations

import orjson

from scoreboard.core.engine import Engine
from scoreboard.core.rules import RuleSet
from scoreboard.read.views import TopReplies, TopReply, Views


def engine() -> Engine:
    e = Engine(RuleSet.from_config({"COMPLETE_LEVEL": {"points": 10}}), ("global", "other"))
    for seq, (user, points) in enumerate([("ann", 50), ("bob", 40), ("cy", 30)], 1):
        e.boards["global"].set(user, points, seq)
    e.last_seq = 3
    return e


def check(reply: TopReply) -> dict[str, object]:
    data: dict[str, object] = orjson.loads(reply.body)
    assert data["version"] == reply.version
    assert reply.etag == f'"{data["board"]}-{reply.version}-{reply.limit}"'
    return data


def test_the_same_reply_until_the_board_changes() -> None:
    e = engine()
    views = Views(e)
    ranking = e.boards["global"]
    first = views.leaderboard(ranking, 2)
    assert views.leaderboard(ranking, 2) is first  # encoded once
    data = check(first)
    assert [x["userId"] for x in data["entries"]] == ["ann", "bob"]  # type: ignore[attr-defined]

    ranking.set("dee", 60, 4)
    second = views.leaderboard(ranking, 2)
    assert second is not first and second.version > first.version
    data = check(second)
    assert [x["userId"] for x in data["entries"]] == ["dee", "ann"]  # type: ignore[attr-defined]
    assert second.etag != first.etag
    assert views.leaderboard(ranking, 2) is second


def test_a_version_change_drops_the_boards_other_limits() -> None:
    e = engine()
    views = Views(e)
    ranking = e.boards["global"]
    views.leaderboard(ranking, 1)
    views.leaderboard(ranking, 3)
    assert len(views.replies) == 2
    ranking.set("ann", 70, 4)
    fresh = views.leaderboard(ranking, 1)
    assert len(views.replies) == 1  # the limit-3 reply of the old version is gone
    assert views.replies.get(("global", None), fresh.version, 3) is None
    assert views.replies.get(("global", None), fresh.version - 1, 1) is None
    check(views.leaderboard(ranking, 3))


def test_bounded_in_limits_and_boards() -> None:
    cache = TopReplies(boards=2, per_board=2)
    for limit in (1, 2, 3):
        cache.put(("a", None), TopReply("a", limit, 7, f'"a-7-{limit}"', b"{}"))
    assert len(cache) == 2 and cache.get(("a", None), 7, 1) is None
    assert cache.get(("a", None), 7, 3) is not None
    cache.put(("b", None), TopReply("b", 1, 1, '"b-1-1"', b"{}"))
    cache.put(("c", None), TopReply("c", 1, 1, '"c-1-1"', b"{}"))
    assert cache.get(("a", None), 7, 3) is None  # the oldest board made room
    assert cache.get(("c", None), 1, 1) is not None
    # a period is its own slot: the same board and limit, another reply
    cache.put(("c", "2026-W01"), TopReply("c", 1, 1, '"c-1-1-w"', b"[]"))
    assert cache.get(("c", "2026-W01"), 1, 1) != cache.get(("c", None), 1, 1)
