"""What the engine does with boards over time: periods that the writer's clock closes,
an administrator's reset, and boards an administrator defines at run time.

A part of `Engine` (a base class it inherits), kept apart to keep each module to one
concept; the state it works on is the engine's.
"""

from __future__ import annotations

from scoreboard.core import errors
from scoreboard.core.boards import BoardDef, BoardError, check_boards
from scoreboard.core.commands import DefineBoard, ResetBoard
from scoreboard.core.pending import ROLLED, Pending
from scoreboard.core.periods import Period, next_id
from scoreboard.core.ranking import Ranking
from scoreboard.core.records import BoardDefinedRecord, LogRecord, PeriodClosedRecord

CLOSED_TOP = 100  # the final standings a close records: the longest live top list


class BoardTimes:
    """The engine's periods and run-time boards."""

    defs: dict[str, BoardDef]
    defined: dict[str, BoardDef]  # the boards defined at run time (images keep them)
    followers: dict[str, tuple[str, ...]]
    boards: dict[str, Ranking]
    periods: dict[str, Period | None]
    ended: set[str]
    closed: list[tuple[PeriodClosedRecord, Ranking]]
    frozen: set[str]

    def roll(self, now: float, pending: Pending) -> list[PeriodClosedRecord]:
        """Close every period that the writer's clock `now` has passed: called first for
        each batch, so the batch's actions belong to the period current at its commit."""
        closed = []
        for board, period in self.periods.items():
            if period is not None and now >= period.ends_at and not pending.has_rolled(board):
                closed.append(self._close(board, period, self.defs[board].period_at(now),
                                          now, pending))
        return closed

    def next_rollover(self) -> float | None:
        """When the earliest current period ends (the writer wakes then), None when no
        board has a period open."""
        return min((p.ends_at for p in self.periods.values() if p is not None), default=None)

    def _close(self, board: str, period: Period, following: Period | None, now: float,
               pending: Pending, **fields: str) -> PeriodClosedRecord:
        if following is not None and not following.holds(now):
            following = None  # past the season's end
        top, total = self._final(board, pending)
        record = PeriodClosedRecord(
            seq=pending.next_seq, at=now, board=board, user_id="", display_name=None,
            period=period.id, starts_at=period.starts_at, ends_at=period.ends_at,
            next_period=None if following is None else following.id,
            next_starts_at=None if following is None else following.starts_at,
            next_ends_at=None if following is None else following.ends_at,
            top=top, total_users=total, **fields,
        )
        pending.next_seq += 1
        pending.records.append(record)
        pending.close(board)
        return record

    def _final(self, board: str, pending: Pending
               ) -> tuple[tuple[tuple[str, int, int], ...], int]:
        """The board's first `CLOSED_TOP` standings (user, score, rank) and how many are
        ranked, as they stand with the groups still committing (`pending`'s chain)."""
        ranking = self.boards[board]
        touched = pending.touched(board)
        entries: list[tuple[str, int, int]] = []  # (user, score, reached seq)
        total = len(ranking)
        for user in touched:
            row = pending.user(user)
            was_ranked = user in ranking and user not in ranking.frozen
            hit = pending.score(board, user)
            if hit is None and user in ranking:
                hit = (board, user, ranking.score(user) or 0, ranking.reached_seq(user) or 0)
            frozen = row.frozen if row is not None else user in self.frozen
            ranked = hit is not None and hit is not ROLLED and not frozen
            total += int(ranked) - int(was_ranked)
            if ranked and hit is not None:
                entries.append((user, hit[2], hit[3]))
        for user, score in ranking.top(CLOSED_TOP + len(touched)):
            if user not in touched:
                entries.append((user, score, ranking.reached_seq(user) or 0))
        sign = 1 if ranking.ascending else -1
        entries.sort(key=lambda e: (sign * e[1], e[2]))
        top: list[tuple[str, int, int]] = []
        for position, (user, score, _) in enumerate(entries[:CLOSED_TOP], 1):
            tied = ranking.competition and top and top[-1][1] == score
            top.append((user, score, top[-1][2] if tied else position))
        return tuple(top), total

    def _decide_reset(self, cmd: ResetBoard, now: float, pending: Pending) -> LogRecord:
        """Close the current period now; the next one takes the schedule's id with a
        suffix and ends when the scheduled period would have."""
        d = self.defs.get(cmd.board)
        if d is None:
            raise errors.NotFound(f"no board {cmd.board!r}")
        if pending.has_rolled(cmd.board) or cmd.board in self.ended:
            raise errors.BoardClosed(f"the board {cmd.board!r} has no open period to reset")
        period = self.periods.get(cmd.board) or d.period_at(now) or Period("all", 0.0, now)
        scheduled = d.period_at(now)
        following = None if scheduled is None else Period(
            next_id(scheduled.id, period.id), now, scheduled.ends_at)
        if following is None:  # a board without periods restarts as one that never ends
            following = Period(next_id("all", period.id), now, float("inf"))
        return self._close(cmd.board, Period(period.id, period.starts_at, now), following,
                           now, pending, actor=cmd.actor, reason=cmd.reason)

    def _decide_define(self, cmd: DefineBoard, now: float, pending: Pending) -> LogRecord:
        """A new board, or a new title or later end for one that exists."""
        try:
            d = cmd.definition()
            old = self.defs.get(d.id)
            if old is not None and not old.may_become(d, ended=d.id in self.ended):
                raise errors.BoardConflict(
                    f"the board {d.id!r} exists with another definition: only its title "
                    "and a later end may change")
            check_boards({**self.defs, d.id: d})
        except BoardError as exc:
            raise errors.InvalidCommand(str(exc)) from None
        record = BoardDefinedRecord(pending.next_seq, now, d.id, "", None, d, cmd.actor,
                                    cmd.reason)
        pending.next_seq += 1
        pending.records.append(record)
        return record

    def define(self, d: BoardDef, seq: int) -> None:
        """An administrator's board: a ranking in its order, a period once it scores."""
        self.defs[d.id] = self.defined[d.id] = d
        self.followers = check_boards(self.defs)
        ranking = self.boards.get(d.id)
        if ranking is None:
            ranking = self.boards[d.id] = Ranking(d.id)
            ranking.frozen |= self.frozen
        if (ranking.ascending, ranking.competition) != (d.ascending, d.competition):
            self.boards[d.id] = ranking = ranking.remade(d.ascending, d.competition)
        ranking.version = max(ranking.version, seq)
        if d.has_periods and d.id not in self.periods:
            self.periods[d.id] = None

    def take_closed(self) -> list[tuple[PeriodClosedRecord, Ranking]]:
        """The closed periods' final rankings, for the archiver, oldest first."""
        closed, self.closed = self.closed, []
        return closed


    def follow(self, r: PeriodClosedRecord) -> None:
        """The board's current period becomes the one the close opened (none: its
        season is over). A board no longer defined keeps its history, and no periods."""
        if r.board not in self.defs:
            return
        if r.next_period is None or r.next_starts_at is None or r.next_ends_at is None:
            self.periods[r.board] = None
            self.ended.add(r.board)
        else:
            self.periods[r.board] = Period(r.next_period, r.next_starts_at, r.next_ends_at)
