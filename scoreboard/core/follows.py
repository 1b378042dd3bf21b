"""What an action does on the boards that follow its board (SPEC §11 `follows`).

An action scored on a board also scores, by each one's operator, on every board that
follows it, in the same record (`ActionRecord.also`) and seq: decided once per follower
of every action, and applied once per user and board for a group the writer commits
(`apply_group`). A part of `Engine` (a base class it inherits), kept apart to keep each
module to one concept; the state it works on is the engine's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import chain

from scoreboard.core import errors
from scoreboard.core.boards import BoardDef
from scoreboard.core.pending import Pending
from scoreboard.core.periods import Period
from scoreboard.core.ranking import KEY_SCORE_SHIFT, MAX_SCORE, SCORE_CEIL, Ranking
from scoreboard.core.records import (
    ActionRecord,
    BoardDefinedRecord,
    BoardScore,
    LogRecord,
    PeriodClosedRecord,
    StandingRemovedRecord,
)

# Records after which a board's rows no longer say what a ranking holds: a group with
# one is applied record by record (`Engine.apply_group`).
_ORDERED = frozenset((PeriodClosedRecord, StandingRemovedRecord, BoardDefinedRecord))
NONE: frozenset[str] = frozenset()


class Follows:
    """The engine's scores on followed boards."""

    defs: dict[str, BoardDef]
    followers: dict[str, tuple[str, ...]]
    boards: dict[str, Ranking]
    periods: dict[str, Period | None]
    ended: set[str]
    _from_rows: frozenset[str]
    _score: Callable[[str, str, int, int, int, float], Ranking]  # the engine's

    def _also(self, followers: tuple[str, ...], user_id: str, amount: int, now: float,
              pending: Pending) -> tuple[BoardScore, ...]:
        """What an action worth `amount` does on the boards that follow its board: the
        action's checks are made once, for its own board; here each follower whose
        season is open only scores it by its operator (`_scored` written out: once per
        follower of every action)."""
        defs, ended, boards = self.defs, self.ended, self.boards
        also = []
        for b in followers:
            d = defs[b]
            if (d.seasonal and not d.open_at(now)) or b in ended:
                continue
            prev: int | None
            group: Pending | None = pending
            while group is not None:  # `pending.score` written out
                scores = group.scores.get(b)
                if scores is not None and (hit := scores.get(user_id)) is not None:
                    prev = hit[2]
                    break
                if b in group.rolled or (group.removed and (b, user_id) in group.removed):
                    prev = None  # the period closed in a pending group, or the user was
                    break  # taken off the board
                group = group.prior
            else:  # `Ranking.score` written out
                ranking = boards[b]
                key = ranking._key_of.get(user_id)
                if key is None:
                    prev = None
                else:
                    high = key >> KEY_SCORE_SHIFT
                    prev = high - SCORE_CEIL if ranking.ascending else SCORE_CEIL - high
            if prev is None:  # the first score, by any operator
                new, prev = amount, 0
            elif d.operator == "sum":
                new = prev + amount
            elif d.operator == "best":
                new = boards[b].better(prev, amount)
            else:
                new = amount
            if not -MAX_SCORE <= new <= MAX_SCORE:
                raise errors.InvalidCommand("the score would leave the range ±(2^53-1)")
            also.append((b, prev, new))
        return tuple(also)

    def _rows_first(self, records: Sequence[LogRecord], pending: Pending) -> frozenset[str]:
        """For `apply_group`: set the followed boards from the group's rows, and
        return them (the records then leave them alone); none when the group must be
        applied record by record."""
        followed = frozenset(chain.from_iterable(self.followers.values()))
        if not followed or pending.rolled or pending.removed \
                or not _ORDERED.isdisjoint(map(type, records)):
            return NONE
        boards, periods, scores = self.boards, self.periods, pending.scores
        rows = [(b, scores[b]) for b in followed if b in scores]
        if not all(b in boards and periods.get(b, 0) is not None for b, _ in rows):
            return NONE  # a board's first score opens its period: `_score`
        for b, by_user in rows:
            boards[b].set_rows(by_user.values())
        return followed

    def _followed(self, r: ActionRecord) -> None:
        """An action's scores on the boards that follow its board: `_score` written out
        for a board whose ranking exists and whose period is open (nearly always)."""
        boards, periods, user_id, seq = self.boards, self.periods, r.user_id, r.seq
        for board, prev, new in r.also:
            ranking = boards.get(board)
            if ranking is None or periods.get(board, 0) is None:
                self._score(board, user_id, prev, new, seq, r.at)
            elif new != prev or user_id not in ranking._key_of:
                ranking.set(user_id, new, seq)
