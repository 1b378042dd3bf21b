"""Read models built from the engine, shared by HTTP, WebSocket and SSE.

Readers only ever see the engine, and the engine only holds committed changes.
The top-N reply is encoded once per (board, limit, version) and served as the same
bytes, with its ETag, until the board changes (`TopReplies`): a busy board is encoded
once per change, not once per request.

Every view here is public unless it says otherwise: a user who hid their name is shown
under their pseudonym (`scoreboard.read.privacy`) and as "Anonymous". Hiding changes the
version of each board the user is on, so no cached body outlives it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson

from scoreboard.core.engine import Engine
from scoreboard.core.periods import Period
from scoreboard.core.ranking import Ranking
from scoreboard.read.cursor import Cursor
from scoreboard.read.privacy import Pseudonyms


@lru_cache(maxsize=4)
def _iso_second(second: int) -> str:
    return datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")


@lru_cache(maxsize=64)
def iso(ts: float) -> str:
    """UTC ISO 8601 with milliseconds and a Z. Every reply carries one, so the
    date part is formatted once per second rather than once per call, and the whole
    once per instant: the actions of one group share theirs."""
    second, micros = divmod(round(ts * 1_000_000), 1_000_000)  # as datetime rounds
    return f"{_iso_second(second)}.{micros // 1000:03d}Z"


@dataclass(frozen=True, slots=True)
class TopReply:
    """The public GET /leaderboard answer for one (board, limit) at one version: the
    encoded body and the ETag that names exactly that body."""

    board: str
    limit: int
    version: int
    etag: str
    body: bytes


# A board's slot in the reply cache: (board, period). The period is None until boards
# have periods; a period's top then gets its own slot and ETag.
Slot = tuple[str, str | None]


class TopReplies:
    """Encoded top-N replies, at most `per_board` limits for each of `boards` slots.

    A slot holds one version only: the first request after a change finds the version
    moved and drops the slot's replies, so a reply is never served for a version it was
    not built from. Only public views are kept here, never an answer for one caller.
    """

    def __init__(self, *, boards: int = 64, per_board: int = 4) -> None:
        self.boards = boards
        self.per_board = per_board
        self._slots: dict[Slot, tuple[int, dict[int, TopReply]]] = {}

    def get(self, slot: Slot, version: int, limit: int) -> TopReply | None:
        held = self._slots.get(slot)
        if held is None or held[0] != version:
            return None
        return held[1].get(limit)

    def put(self, slot: Slot, reply: TopReply) -> None:
        held = self._slots.get(slot)
        if held is None or held[0] != reply.version:
            if held is None and len(self._slots) >= self.boards:
                self._slots.pop(next(iter(self._slots)))  # the oldest slot
            held = self._slots[slot] = (reply.version, {})
        replies = held[1]
        if len(replies) >= self.per_board and reply.limit not in replies:
            replies.pop(next(iter(replies)))
        replies[reply.limit] = reply

    def __len__(self) -> int:
        return sum(len(replies) for _, replies in self._slots.values())


class Views:
    def __init__(self, engine: Engine, *, top_size: int = 10,
                 pseudonym_key: bytes | None = None,
                 replies: TopReplies | None = None) -> None:
        self.engine = engine
        # The engine's own methods, bound once: asked on every read.
        self.ranking: Callable[[str], Ranking | None] = engine.ranking
        self._period_of = engine.current_period
        self.pseudonyms = Pseudonyms(engine.hidden_users(), pseudonym_key)
        self.top_size = top_size
        self.replies = replies or TopReplies()

    def entries(self, ranking: Ranking, limit: int) -> list[dict[str, Any]]:
        name = self.engine.display_name
        public = self.pseudonyms.public_id
        rows = ranking.window(0, limit) if ranking.competition else (
            (i, user, score) for i, (user, score) in enumerate(ranking.top(limit), 1))
        return [
            {"rank": rank, "userId": public(user), "displayName": name(user), "score": score}
            for rank, user, score in rows
        ]

    def top(self, ranking: Ranking, limit: int) -> dict[str, Any]:
        """The top `limit` of a board: the object of GET /leaderboard."""
        return {
            "board": ranking.board,
            "entries": self.entries(ranking, limit),
            "totalUsers": len(ranking),
            "version": ranking.version,
            "generatedAt": iso(time.time()),
            **self._paging(ranking, ranking.window(limit - 1, limit), limit),
        }

    def leaderboard(self, ranking: Ranking, limit: int) -> TopReply:
        """The reply to GET /leaderboard: the cached one while the board's version stands."""
        period = self._period_of(ranking.board, time.time())
        slot = (ranking.board, None if period is None else period.id)
        version = ranking.version
        reply = self.replies.get(slot, version, limit)
        if reply is not None:
            return reply
        body = orjson.dumps(self.top(ranking, limit))
        reply = TopReply(ranking.board, limit, version,
                         f'"{ranking.board}-{version}-{limit}"', body)
        self.replies.put(slot, reply)
        return reply

    def page(self, ranking: Ranking, after: Cursor, limit: int) -> dict[str, Any]:
        """The GET /leaderboard reply for the page after a cursor (of this board and
        period: the caller checked)."""
        rows = ranking.after(after.score, after.seq, limit)
        name = self.engine.display_name
        public = self.pseudonyms.public_id
        return {
            "board": ranking.board,
            "entries": [{"rank": r, "userId": public(u), "displayName": name(u), "score": s}
                        for r, u, s in rows],
            "totalUsers": len(ranking),
            "version": ranking.version,
            "generatedAt": iso(time.time()),
            **self._paging(ranking, rows[-1:] if len(rows) == limit else [], limit),
        }

    def _paging(self, ranking: Ranking, last: list[tuple[int, str, int]], limit: int
                ) -> dict[str, Any]:
        """`period` and `nextCursor` (after `last`, the page's full last row, if any)."""
        period = self._period_of(ranking.board, time.time())
        pid = None if period is None else period.id
        cursor = None
        if last:
            _, user, score = last[0]
            seq = ranking.reached_seq(user)
            if seq is not None and ranking.after(score, seq, 1):
                cursor = Cursor(ranking.board, pid, score, seq).encode()
        return {"period": pid, "nextCursor": cursor}

    def period(self, board: str, now: float | None = None) -> Period | None:
        """The board's current period: the one the log opened, else the one the
        schedule gives for `now` (no score yet); None without periods or once closed."""
        return self._period_of(board, time.time() if now is None else now)

    def boards(self) -> list[dict[str, Any]]:
        """GET /boards: every board's definition, current period and whether it is closed."""
        now = time.time()
        out = []
        engine = self.engine
        for d in engine.definitions():
            board = d.id
            period = engine.current_period(board, now)
            out.append({
                "id": board, "title": d.title, "sort": d.sort, "operator": d.operator,
                "ranks": d.ranks, "follows": list(d.follows), "reset": d.reset,
                "timezone": d.timezone,
                "period": None if period is None else {
                    "id": period.id, "startsAt": _when(period.starts_at),
                    "endsAt": _when(period.ends_at)},
                "closed": engine.season_ended(board) or (d.end is not None and now >= d.end),
            })
        return out

    def live_update(self, ranking: Ranking, limit: int) -> dict[str, Any]:
        """The data object of LEADERBOARD_UPDATE and of the SSE `leaderboard` event."""
        period = self._period_of(ranking.board, time.time())
        return {
            "board": ranking.board,
            "version": ranking.version,
            "period": None if period is None else period.id,
            "top": self.entries(ranking, limit),
            "timestamp": iso(time.time()),
        }

    def closed_top(self, top: Sequence[tuple[str, int, int]], limit: int
                   ) -> list[dict[str, Any]]:
        """A closed period's final (user, score, rank) as live entries."""
        name = self.engine.display_name
        public = self.pseudonyms.public_id
        return [{"rank": rank, "userId": public(user), "displayName": name(user),
                 "score": score} for user, score, rank in top[:limit]]

    def around(self, ranking: Ranking, user_id: str, radius: int) -> dict[str, Any] | None:
        rows = ranking.around(user_id, radius)
        if not rows:
            return None
        name = self.engine.display_name
        public = self.pseudonyms.public_id
        return {
            "board": ranking.board,
            "userId": public(user_id),
            "entries": [
                {"rank": r, "userId": public(u), "displayName": name(u), "score": s}
                for r, u, s in rows
            ],
            "totalUsers": len(ranking),
            "version": ranking.version,
        }

    def users(self, ranking: Ranking, user_ids: Iterable[str]) -> list[dict[str, Any]]:
        """Those users' entries on a board in rank order (a friends list); users not on
        the board are left out. Ids are real ids: the caller decides whom it may ask
        about (a hidden user by pseudonym); the entries show public ids."""
        name = self.engine.display_name
        public = self.pseudonyms.public_id
        found = []
        for user in set(user_ids):
            rank = ranking.rank(user)
            score = ranking.score(user)
            if rank is not None and score is not None:
                found.append((rank, user, score))
        return [
            {"rank": rank, "userId": public(user), "displayName": name(user), "score": score}
            for rank, user, score in sorted(found)
        ]

    def user_score(self, ranking: Ranking, user_id: str, *,
                   private: bool = False) -> dict[str, Any] | None:
        """One user's standing; `private` (the user or an administrator asking) shows
        their real id even when they are hidden."""
        rank = ranking.rank(user_id)
        score = ranking.score(user_id)
        if rank is None or score is None:
            return None
        in_top = rank <= self.top_size
        points_to_top = 0
        if not in_top:
            last = ranking.window(self.top_size - 1, self.top_size)
            # one point more than the last place takes it (ties go to whoever was first)
            points_to_top = last[0][2] - score + 1 if last else 0
        return {
            "userId": user_id if private else self.pseudonyms.public_id(user_id),
            "board": ranking.board,
            "displayName": self.engine.display_name(user_id),
            "score": score,
            "rank": rank,
            "inTop": in_top,
            "pointsToTop": points_to_top,
            "totalUsers": len(ranking),
            "topPercent": round(100 * rank / len(ranking), 2),
        }


def _when(t: float) -> str | None:
    """A period's bound as ISO text; None for an open end (a season without start or end)."""
    return None if t in (float("inf"), float("-inf")) else iso(t)
