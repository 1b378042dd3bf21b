"""What the rest of the package may ask the engine: rankings, board definitions and
periods, users' standing flags, the answer to a committed command, and a digest of the
state.

A part of `Engine` (a base class it inherits), kept apart so that the engine's module
holds deciding and applying; the state these read is the engine's. Nothing outside the
core reads that state but through these methods (a layer test checks it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence, Set
from typing import Any

from scoreboard.core.boards import BoardDef
from scoreboard.core.commands import ActionResult, UserResult
from scoreboard.core.names import Names
from scoreboard.core.periods import Period
from scoreboard.core.ranking import Ranking
from scoreboard.core.records import ActionRecord, LogRecord, PeriodClosedRecord, ScoreRecord

ANONYMOUS = "Anonymous"


class EngineQueries:
    """The engine's read side."""

    defs: dict[str, BoardDef]
    defined: dict[str, BoardDef]
    boards: dict[str, Ranking]
    periods: dict[str, Period | None]
    ended: set[str]
    closed: list[tuple[PeriodClosedRecord, Ranking]]
    names: Names
    frozen: set[str]
    anonymous: set[str]
    flags: dict[str, str]
    revoked: dict[str, float]
    last_seq: int

    # -- boards ----------------------------------------------------------------------------

    def ranking(self, board: str) -> Ranking | None:
        """The board's live ranking; None for a board that does not exist."""
        return self.boards.get(board)

    def board_sizes(self) -> dict[str, int]:
        """How many users each board ranks."""
        return {name: len(b) for name, b in self.boards.items()}

    def definition(self, board: str) -> BoardDef | None:
        return self.defs.get(board)

    def definitions(self) -> Iterable[BoardDef]:
        """Every board's definition, configured ones first, then those defined at run time."""
        return self.defs.values()

    def season_ended(self, board: str) -> bool:
        return board in self.ended

    def current_period(self, board: str, now: float) -> Period | None:
        """The board's current period: the one the log opened, else the one the schedule
        gives for `now` (no score yet); None without periods, for an unknown board or
        once the season ended."""
        d = self.defs.get(board)
        if d is None or board in self.ended:
            return None
        current = self.periods.get(board)
        if current is not None:
            return current
        return d.period_at(now)

    # -- users -----------------------------------------------------------------------------

    def display_name(self, user_id: str) -> str:
        if user_id in self.anonymous:
            return ANONYMOUS
        return self.names.get(user_id) or user_id

    def chosen_name(self, user_id: str) -> str | None:
        """The name the user gave, even when they are hidden; None without one."""
        return self.names.get(user_id)

    def is_frozen(self, user_id: str) -> bool:
        return user_id in self.frozen

    def flagged(self) -> list[tuple[str, str]]:
        """(user, why the abuse monitor flagged them), by user."""
        return sorted(self.flags.items())

    def hidden_users(self) -> Set[str]:
        """The users who appear as ANONYMOUS: a live view, read on each use."""
        return self.anonymous

    def revocations(self) -> Mapping[str, float]:
        """User → the moment up to which their tokens are refused: a live view."""
        return self.revoked

    # -- answering -------------------------------------------------------------------------

    def result(self, r: LogRecord, *, replayed: bool, ranked: bool = True
               ) -> ActionResult | UserResult:
        """The answer to the command that wrote `r`, from the committed state (so `r`
        is applied first): the score change with its rank (none when `ranked` is false:
        the caller ranks it itself), or the user's standing after the change."""
        if isinstance(r, ScoreRecord):
            ranking = self.boards.get(r.board) if ranked else None
            return ActionResult(
                user_id=r.user_id, board=r.board,
                action_type=r.action_type if isinstance(r, ActionRecord) else None,
                delta=r.delta, new_score=r.new_score,
                rank=ranking.rank(r.user_id) if ranking else None,
                replayed=replayed, seq=r.seq, at=r.at,
            )
        return UserResult(
            user_id=r.user_id, frozen=r.user_id in self.frozen,
            hidden=r.user_id in self.anonymous, flag=self.flags.get(r.user_id),
            seq=r.seq, at=r.at,
        )

    def results(self, records: Sequence[LogRecord], replayed: Sequence[bool],
                ranked: Sequence[bool]) -> list[ActionResult | UserResult]:
        """`result` of each record, replayed or not, ranked or not (side by side), from
        the committed state: a group's answers at once, each board's ranks looked up
        together (`ranks_of`), once per user."""
        ranks: dict[str, dict[str, int | None]] = {}  # board → user → rank
        for r, rank in zip(records, ranked, strict=True):
            if rank and isinstance(r, ScoreRecord):
                users = ranks.get(r.board)
                if users is None:
                    users = ranks[r.board] = {}
                users[r.user_id] = None
        boards = self.boards
        for board, users in ranks.items():
            ranking = boards.get(board)
            if ranking:  # (an empty ranking ranks nobody)
                ranks[board] = dict(zip(users, ranking.ranks_of(users), strict=True))
        out: list[ActionResult | UserResult] = []
        append = out.append
        for r, again, rank in zip(records, replayed, ranked, strict=True):
            if r.__class__ is ActionRecord:
                assert isinstance(r, ActionRecord)
                append(ActionResult(  # positional, in field order: once per action
                    r.user_id, r.board, r.action_type, r.delta, r.new_score,
                    ranks[r.board][r.user_id] if rank else None, again, r.seq, r.at))
            else:
                append(self.result(r, replayed=again, ranked=rank))
        return out

    def state_digest(self) -> dict[str, Any]:
        """Everything a replay must reproduce, in a comparable form (tests, `verify`)."""
        return {
            "boards": {
                name: sorted(b.rows()) for name, b in self.boards.items() if len(b._key_of)
            },
            "order": {name: b.top(len(b)) for name, b in self.boards.items()},
            "names": dict(sorted(self.names.items())),
            "frozen": sorted(self.frozen),
            "anonymous": sorted(self.anonymous),
            "flags": dict(sorted(self.flags.items())),
            "revoked": dict(sorted(self.revoked.items())),
            "periods": dict(self.periods),
            "ended": sorted(self.ended),
            "defined": dict(sorted(self.defined.items())),
            "closed": [(r.board, r.period, list(b.ranks())) for r, b in self.closed],
            "last_seq": self.last_seq,
        }
