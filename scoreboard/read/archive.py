"""Reads of closed periods (SPEC §11): the standings the archiver stored, as the public
replies show a board's current period.

A period is read only once its archive is complete; until then (and for a period that
never was) it is 404. Pages go by position (1, 2, 3 … even where ranks tie), so the
cursor of a closed period holds the last position shown: nothing moves in a closed
period, so a page never repeats or skips anyone. User ids go through the pseudonyms as
on the live boards.
"""

from __future__ import annotations

import time
from typing import Any

from scoreboard.core import errors
from scoreboard.read.cursor import Cursor
from scoreboard.read.views import Views, iso
from scoreboard.storage.base import ActionLog, ArchivedPeriod, ArchiveRow


def _when(t: float | None) -> str | None:
    return None if t is None else iso(t)


class PeriodReads:
    def __init__(self, store: ActionLog, views: Views) -> None:
        self.store = store
        self.views = views

    async def period(self, board: str, period: str) -> ArchivedPeriod:
        """The closed period, or NotFound."""
        found = await self.store.archived_period(board, period)
        if found is None:
            raise errors.NotFound(f"no closed period {period!r} of board {board!r}")
        return found

    def entries(self, rows: list[ArchiveRow]) -> list[dict[str, Any]]:
        name, public = self.views.engine.display_name, self.views.pseudonyms.public_id
        return [{"rank": r.rank, "userId": public(r.user_id), "displayName": name(r.user_id),
                 "score": r.score} for r in rows]

    async def leaderboard(self, board: str, period: str, after: Cursor | None, limit: int
                          ) -> dict[str, Any]:
        """GET /leaderboard?period=: a page of the closed period's standings."""
        p = await self.period(board, period)
        position = 0 if after is None else after.seq
        rows = await self.store.archive_page(board, period, position, limit)
        last = rows[-1].position if rows else position
        cursor = Cursor(board, period, 0, last).encode() if (
            len(rows) == limit and last < p.total_users) else None
        return {"board": board, "entries": self.entries(rows), "totalUsers": p.total_users,
                "version": p.closed_seq, "generatedAt": iso(time.time()), "period": period,
                "nextCursor": cursor}

    async def user_score(self, board: str, period: str, user_id: str, *, private: bool
                         ) -> dict[str, Any] | None:
        """GET /users/{userId}/score?period=: the user's final standing, None when they
        were not in it."""
        p = await self.period(board, period)
        row = await self.store.archive_user(board, period, user_id)
        if row is None:
            return None
        top = self.views.top_size
        in_top = row.position <= top
        points_to_top = 0
        if not in_top:
            last = await self.store.archive_page(board, period, top - 1, 1)
            points_to_top = last[0].score - row.score + 1 if last else 0
        return {
            "userId": user_id if private else self.views.pseudonyms.public_id(user_id),
            "board": board, "displayName": self.views.engine.display_name(user_id),
            "score": row.score, "rank": row.rank, "inTop": in_top,
            "pointsToTop": points_to_top, "totalUsers": p.total_users,
            "topPercent": round(100 * row.rank / p.total_users, 2),
        }

    async def users(self, board: str, period: str, user_ids: list[str]) -> dict[str, Any]:
        """GET /leaderboard/users?period=: those users' final standings in the closed
        period, in rank order; users not in it are left out (ids as in `Views.users`)."""
        p = await self.period(board, period)
        rows = [row for row in [await self.store.archive_user(board, period, u)
                                for u in dict.fromkeys(user_ids)] if row is not None]
        return {"board": board, "period": period,
                "entries": self.entries(sorted(rows)), "totalUsers": p.total_users,
                "version": p.closed_seq}

    async def periods(self, board: str, before: str | None, limit: int) -> dict[str, Any]:
        """GET /boards/{board}/periods: closed periods, newest first, with their top 3;
        `before` must be one of them."""
        if before is not None:
            await self.period(board, before)
        found = await self.store.periods(board, before, limit + 1)
        more = len(found) > limit
        found = found[:limit]
        return {
            "board": board,
            "periods": [{"id": p.period, "startsAt": _when(p.starts_at),
                         "endsAt": _when(p.ends_at), "totalUsers": p.total_users,
                         "closedSeq": p.closed_seq, "top": self.entries(list(p.top))}
                        for p in found],
            "next": found[-1].period if more and found else None,
        }
