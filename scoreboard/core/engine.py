"""The engine: all state that decides whether a change is accepted, and the rankings.

`decide(command, now, pending)` checks a command against the committed state plus the
changes already decided in the same batch (`pending`) and returns the record it would
append, or a `Replay` of an earlier identical action, or raises a `Rejection`. It never
changes the committed state. `apply(record)` is the only thing that does, never fails,
and is all recovery needs: replaying the log through `apply` rebuilds the state.

What decisions remember of recent records is kept by parts of its own, each with its
decide-time check, what it remembers of a committed record and when it forgets:
`IdempotencyKeys`, `QuotaWindows`, `SpentProofs` and the `AbuseMonitor`. The engine
holds the rankings and the users, and composes those parts.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from scoreboard.core import errors
from scoreboard.core.abuse import MONITOR, AbuseMonitor
from scoreboard.core.boards import BoardDef, BoardError, check_boards
from scoreboard.core.commands import (
    ActionResult,
    AdjustScore,
    ClearFlag,
    Command,
    DefineBoard,
    RemoveStanding,
    ResetBoard,
    RevokeTokens,
    SetFrozen,
    SetNameHidden,
    SubmitAction,
    UserResult,
)
from scoreboard.core.idempotency import IdempotencyKeys, Replay, command_fingerprint
from scoreboard.core.names import Names
from scoreboard.core.pending import Pending
from scoreboard.core.periods import Period, next_id
from scoreboard.core.quotas import QuotaWindows
from scoreboard.core.ranking import MAX_SCORE, Ranking
from scoreboard.core.records import (
    ActionRecord,
    AdjustRecord,
    BoardDefinedRecord,
    BoardScore,
    CommitBatch,
    FlagRecord,
    FreezeRecord,
    HideNameRecord,
    LogRecord,
    ModerationRecord,
    PeriodClosedRecord,
    RevokeTokensRecord,
    ScoreRecord,
    ScoreRow,
    ShowNameRecord,
    StandingRemovedRecord,
    UnflagRecord,
    UnfreezeRecord,
    UserRow,
)
from scoreboard.core.rules import AbuseLimits, RuleSet
from scoreboard.core.spent_proofs import SpentProofs

# Replay, Pending and command_fingerprint are part of what deciding answers; the
# writer takes them from here with the engine.
__all__ = ["ANONYMOUS", "MONITOR", "Engine", "Pending", "Replay", "command_fingerprint"]

ANONYMOUS = "Anonymous"


class Memory(Protocol):
    """What decisions remember of recent records, each part forgetting on its own."""

    def remember(self, r: LogRecord) -> None: ...
    def expire(self, now: float) -> None: ...
    def digest(self) -> Any: ...


class Engine:
    def __init__(
        self,
        rules: RuleSet,
        boards: Iterable[str | BoardDef] = ("global",),
        *,
        retention: float = 3600.0,
        max_keys: int = 200_000,
        abuse: AbuseLimits | None = None,
    ) -> None:
        self.rules = rules
        defs = [b if isinstance(b, BoardDef) else BoardDef(b) for b in boards]
        self.defs: dict[str, BoardDef] = {"global": BoardDef("global")} | {d.id: d for d in defs}
        self.followers = check_boards(self.defs)  # board → the boards an action also scores on
        self.boards: dict[str, Ranking] = {
            d.id: Ranking(d.id, ascending=d.ascending, competition=d.competition)
            for d in self.defs.values()
        }
        # The current period of each board that has periods: None until its first score
        # (then the schedule's period of that moment) and after its season ended.
        self.periods: dict[str, Period | None] = {
            d.id: None for d in self.defs.values() if d.has_periods}
        self.ended: set[str] = set()  # boards whose season is over
        # Closed periods' rankings, oldest first, until the archiver takes them.
        self.closed: list[tuple[PeriodClosedRecord, Ranking]] = []
        self.last_seq = 0
        self.last_at = 0.0
        self.names = Names(self.boards["global"])
        self.frozen: set[str] = set()
        self.anonymous: set[str] = set()  # users who asked to appear as ANONYMOUS
        self.flags: dict[str, str] = {}  # user → why the abuse monitor flagged them
        # user → the moment up to which their tokens are refused (one float per user)
        self.revoked: dict[str, float] = {}
        # What decisions remember of recent records; each forgets what has lapsed.
        self.keys = IdempotencyKeys(retention=retention, max_keys=max_keys)
        self.quotas = QuotaWindows(rules)
        self.spent = SpentProofs()
        self.abuse = AbuseMonitor(abuse) if abuse is not None and abuse.enabled else None
        self._memories: tuple[Memory, ...] = (self.keys, self.quotas, self.spent) + (
            () if self.abuse is None else (self.abuse,)
        )

    # -- deciding ------------------------------------------------------------------------

    def decide(self, cmd: Command, now: float, pending: Pending) -> LogRecord | Replay:
        if isinstance(cmd, SubmitAction):
            return self._decide_action(cmd, now, pending)
        if isinstance(cmd, AdjustScore):
            return self._decide_adjust(cmd, now, pending)
        if isinstance(cmd, SetFrozen | SetNameHidden | ClearFlag):
            return self._decide_user_flag(cmd, now, pending)
        if isinstance(cmd, RevokeTokens):
            return self._decide_revoke(cmd, now, pending)
        if isinstance(cmd, ResetBoard):
            return self._decide_reset(cmd, now, pending)
        if isinstance(cmd, DefineBoard):
            return self._decide_define(cmd, now, pending)
        if isinstance(cmd, RemoveStanding):
            return self._decide_remove(cmd, now, pending)
        raise errors.InvalidCommand(f"unsupported command {type(cmd).__name__}")

    def _board(self, board: str) -> Ranking:
        ranking = self.boards.get(board)
        if ranking is None:
            raise errors.InvalidCommand(f"unknown board {board!r}")
        return ranking

    def _current(self, board: str, user_id: str, pending: Pending) -> int | None:
        """The user's score on the board's current period, None when they have none."""
        hit = pending.scores.get((board, user_id))
        if hit is not None:
            return hit[0]
        if board in pending.rolled or (board, user_id) in pending.removed:
            return None  # the period closed in this batch (a fresh board), or taken off
        return self.boards[board].score(user_id)

    def _user(self, user_id: str, pending: Pending) -> UserRow:
        row = pending.users.get(user_id)
        if row is not None:
            return row
        return UserRow(
            user_id,
            self.names.get(user_id),
            user_id in self.frozen,
            user_id in self.anonymous,
            self.flags.get(user_id),
            self.revoked.get(user_id),
        )

    def _decide_action(self, cmd: SubmitAction, now: float, pending: Pending) -> LogRecord | Replay:
        rule = self.rules.get(cmd.action_type)
        if rule is None:
            raise errors.UnknownAction(f"unknown actionType {cmd.action_type!r}")
        self._board(cmd.board)
        replay = self.keys.check(cmd, pending)
        if replay is not None:
            return replay
        self._check_open(cmd.board, now)
        user = self._user(cmd.user_id, pending)
        if user.frozen:
            raise errors.UserFrozen("this user is frozen and cannot score")
        spends = rule.proof_required or (rule.valued and cmd.proof is not None)
        proof = self.spent.check(cmd, now, pending) if spends else None
        amount = rule.points
        if rule.valued:
            value = cmd.value if cmd.value is not None else None if proof is None else proof.val
            if value is None:
                raise errors.InvalidCommand(
                    f"{cmd.action_type} scores a value: it needs a proof claiming `val`")
            if not rule.min <= value <= rule.max:
                raise errors.InvalidCommand(
                    f"{cmd.action_type}: the value must be from {rule.min} to {rule.max}")
            amount = value
        if rule.quota is not None:
            self.quotas.check(cmd.user_id, cmd.action_type, rule.quota, now, pending)
        also = tuple(
            BoardScore(b, *self._scored(b, cmd.user_id, amount, pending))
            for b in self.followers[cmd.board]
            if self.defs[b].open_at(now) and b not in self.ended
        )
        record = self._score_record(
            pending, now, cmd.board, user, amount, ActionRecord, also=also,
            display_name=cmd.display_name or user.display_name,
            client_action_id=cmd.client_action_id,
            action_type=cmd.action_type,
            metadata=cmd.metadata,
            proof_jti=None if proof is None else proof.jti,
            proof_exp=None if proof is None else proof.exp,
        )
        self.keys.hold(cmd, pending)
        if rule.quota is not None:
            self.quotas.hold(cmd.user_id, cmd.action_type, pending)
        if proof is not None:
            self.spent.hold(proof.jti, pending)
        if self.abuse is not None:
            self._watch(self.abuse, cmd.user_id, rule.points, now, pending)
        return record

    def _watch(self, monitor: AbuseMonitor, user_id: str, points: int, now: float,
               pending: Pending) -> None:
        """Flag (and optionally freeze) a user whose last minute passes a threshold."""
        reason = monitor.observe(user_id, points, now, pending)
        user = self._user(user_id, pending)
        if reason is None or user.flag is not None:
            return
        user = user._replace(flag=reason)
        self._user_record(pending, now, user, FlagRecord, actor=MONITOR, reason=reason)
        if monitor.auto_freeze and not user.frozen:
            user = user._replace(frozen=True)
            self._user_record(pending, now, user, FreezeRecord, actor=MONITOR,
                              reason=f"automatic: {reason}")

    def _user_record(self, pending: Pending, now: float, row: UserRow,
                     cls: type[ModerationRecord | HideNameRecord | ShowNameRecord],
                     **fields: str) -> LogRecord:
        """`fields`: the actor and reason of a `ModerationRecord`."""
        record = cls(
            seq=pending.next_seq, at=now, board="global", user_id=row.user_id,
            display_name=row.display_name, **fields,
        )
        pending.next_seq += 1
        pending.records.append(record)
        pending.users[row.user_id] = row
        return record

    def _decide_adjust(self, cmd: AdjustScore, now: float, pending: Pending) -> LogRecord | Replay:
        self._board(cmd.board)
        if cmd.delta == 0:
            raise errors.InvalidCommand("delta must not be 0")
        self._check_open(cmd.board, now)
        replay = self.keys.check(cmd, pending)
        if replay is not None:
            return replay
        user = self._user(cmd.user_id, pending)
        record = self._score_record(
            pending, now, cmd.board, user, cmd.delta, AdjustRecord,
            display_name=user.display_name,
            client_action_id=cmd.client_action_id,
            actor=cmd.actor,
            reason=cmd.reason,
        )
        self.keys.hold(cmd, pending)
        return record

    def _check_open(self, board: str, now: float) -> None:
        d = self.defs[board]
        if board in self.ended or not d.open_at(now):
            raise errors.BoardClosed(f"the board {board!r} counts no actions now")

    def _scored(self, board: str, user_id: str, amount: int, pending: Pending
                ) -> tuple[int, int]:
        """(prev, new) of the user's score on `board` after an action worth `amount`,
        by the board's operator; prev is 0 when they had none."""
        prev = self._current(board, user_id, pending)
        operator = self.defs[board].operator
        if operator == "sum" or (prev is None and operator == "best"):
            new = (prev or 0) + amount if operator == "sum" else amount
        elif operator == "best":
            new = self.boards[board].better(prev or 0, amount)
        else:
            new = amount
        if not -MAX_SCORE <= new <= MAX_SCORE:
            raise errors.InvalidCommand("the score would leave the range ±(2^53-1)")
        return prev or 0, new

    def _score_record(
        self, pending: Pending, now: float, board: str, user: UserRow, amount: int,
        cls: type[ScoreRecord], *, display_name: str | None, **fields: Any,
    ) -> ScoreRecord:
        """`user` as `_user` gives it: the decision already looked it up. `amount`: the
        points (or value) of an action, or an adjustment's delta (added whatever the
        operator)."""
        user_id = user.user_id
        if cls is ActionRecord:
            prev, new = self._scored(board, user_id, amount, pending)
        else:
            prev = self._current(board, user_id, pending) or 0
            new = prev + amount
            if not -MAX_SCORE <= new <= MAX_SCORE:
                raise errors.InvalidCommand("the score would leave the range ±(2^53-1)")
        seq = pending.next_seq
        record = cls(
            seq=seq, at=now, board=board, user_id=user_id, display_name=display_name,
            delta=new - prev, prev_score=prev, new_score=new, **fields,
        )
        pending.next_seq += 1
        pending.records.append(record)
        for b, old, score in [(board, prev, new), *fields.get("also", ())]:
            if score != old or self._current(b, user_id, pending) is None:
                pending.scores[(b, user_id)] = (score, seq)  # an unchanged best keeps its seq
        if display_name is not None and display_name != user.display_name:
            pending.users[user_id] = user._replace(display_name=display_name)
        elif user_id not in pending.users and user.display_name is None:
            pending.users[user_id] = user  # every scoring user has a row, named or not
        return record

    def _decide_user_flag(
        self, cmd: SetFrozen | SetNameHidden | ClearFlag, now: float, pending: Pending
    ) -> LogRecord:
        """Privacy may be set before the first score (the user's own choice, recorded
        and so applied from their first score on); the others need a known user."""
        user = self._user(cmd.user_id, pending)
        known = isinstance(cmd, SetNameHidden) or user.user_id in self.names or (
            user.user_id in pending.users) or any(user.user_id in b for b in self.boards.values())
        if not known:
            raise errors.NotFound(f"no user {cmd.user_id!r}")
        if isinstance(cmd, SetFrozen):
            cls = FreezeRecord if cmd.frozen else UnfreezeRecord
            return self._user_record(pending, now, user._replace(frozen=cmd.frozen), cls,
                                     actor=cmd.actor, reason=cmd.reason)
        if isinstance(cmd, ClearFlag):
            return self._user_record(pending, now, user._replace(flag=None), UnflagRecord,
                                     actor=cmd.actor, reason=cmd.reason)
        return self._user_record(pending, now, user._replace(hidden=cmd.hidden),
                                 HideNameRecord if cmd.hidden else ShowNameRecord)

    def _decide_revoke(self, cmd: RevokeTokens, now: float, pending: Pending) -> LogRecord:
        """Any user id may be revoked, scored or not: a stolen token of a reader counts too.
        The moment never moves back, even if the clock does."""
        user = self._user(cmd.user_id, pending)
        at = max(now, user.tokens_revoked_at or now)
        return self._user_record(pending, at, user._replace(tokens_revoked_at=at),
                                 RevokeTokensRecord, actor=cmd.actor, reason=cmd.reason)

    # -- periods -------------------------------------------------------------------------

    def roll(self, now: float, pending: Pending) -> list[PeriodClosedRecord]:
        """Close every period that the writer's clock `now` has passed: called first for
        each batch, so the batch's actions belong to the period current at its commit."""
        closed = []
        for board, period in self.periods.items():
            if period is not None and now >= period.ends_at and board not in pending.rolled:
                closed.append(self._close(board, period, self.defs[board].period_at(now),
                                          now, pending))
        return closed

    def _close(self, board: str, period: Period, following: Period | None, now: float,
               pending: Pending, **fields: str) -> PeriodClosedRecord:
        if following is not None and not following.holds(now):
            following = None  # past the season's end
        record = PeriodClosedRecord(
            seq=pending.next_seq, at=now, board=board, user_id="", display_name=None,
            period=period.id, starts_at=period.starts_at, ends_at=period.ends_at,
            next_period=None if following is None else following.id,
            next_starts_at=None if following is None else following.starts_at,
            next_ends_at=None if following is None else following.ends_at, **fields,
        )
        pending.next_seq += 1
        pending.records.append(record)
        pending.rolled.add(board)
        return record

    def _decide_reset(self, cmd: ResetBoard, now: float, pending: Pending) -> LogRecord:
        """Close the current period now; the next one takes the schedule's id with a
        suffix and ends when the scheduled period would have."""
        d = self.defs.get(cmd.board)
        if d is None:
            raise errors.NotFound(f"no board {cmd.board!r}")
        if cmd.board in pending.rolled or cmd.board in self.ended:
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

    def _decide_remove(self, cmd: RemoveStanding, now: float, pending: Pending) -> LogRecord:
        if cmd.board not in self.boards:
            raise errors.NotFound(f"no board {cmd.board!r}")
        if self._current(cmd.board, cmd.user_id, pending) is None:
            raise errors.NotFound(f"user {cmd.user_id!r} is not on board {cmd.board!r}")
        user = self._user(cmd.user_id, pending)
        record = StandingRemovedRecord(pending.next_seq, now, cmd.board, cmd.user_id,
                                       user.display_name, cmd.actor, cmd.reason)
        pending.next_seq += 1
        pending.records.append(record)
        pending.scores.pop((cmd.board, cmd.user_id), None)
        pending.removed.add((cmd.board, cmd.user_id))
        return record

    def _define(self, d: BoardDef, seq: int) -> None:
        """An administrator's board: a ranking in its order, a period once it scores."""
        self.defs[d.id] = d
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

    def new_pending(self) -> Pending:
        return Pending(next_seq=self.last_seq + 1)

    def batch(self, pending: Pending) -> CommitBatch:
        """What one transaction must write for the pending changes."""
        scores = tuple(
            ScoreRow(board, user, score, seq)
            for (board, user), (score, seq) in pending.scores.items()
        )
        return CommitBatch(tuple(pending.records), scores, tuple(pending.users.values()))

    # -- applying ------------------------------------------------------------------------

    def apply(self, r: LogRecord) -> None:
        """Make a committed record part of the state. Never fails for a record of a
        kind the log knows (`RECORD_TYPES`)."""
        match r:
            case ScoreRecord():
                ranking = self._score(r.board, r.user_id, r.prev_score, r.new_score, r.seq,
                                      r.at)
                if isinstance(r, ActionRecord):
                    for follower, prev, new in r.also:
                        self._score(follower, r.user_id, prev, new, r.seq, r.at)
                if r.display_name is not None and self.names.get(r.user_id) != r.display_name:
                    self.names[r.user_id] = r.display_name
                    self._touch(r.user_id, r.seq, skip=ranking)
            case PeriodClosedRecord():
                old = self.boards[r.board]
                self.closed.append((r, old))
                self.boards[r.board] = fresh = old.fresh()
                fresh.version = max(fresh.version, r.seq)
                if r.next_period is None or r.next_starts_at is None or r.next_ends_at is None:
                    self.periods[r.board] = None
                    self.ended.add(r.board)
                else:
                    self.periods[r.board] = Period(r.next_period, r.next_starts_at,
                                                   r.next_ends_at)
            case BoardDefinedRecord():
                self._define(r.definition, r.seq)
            case StandingRemovedRecord():
                self.boards[r.board].remove(r.user_id, r.seq)
            case FreezeRecord():
                self.frozen.add(r.user_id)
                for b in self.boards.values():
                    b.freeze(r.user_id, r.seq)
            case UnfreezeRecord():
                self.frozen.discard(r.user_id)
                for b in self.boards.values():
                    b.unfreeze(r.user_id, r.seq)
            case HideNameRecord():
                self.anonymous.add(r.user_id)
                self._touch(r.user_id, r.seq)
            case ShowNameRecord():
                self.anonymous.discard(r.user_id)
                self._touch(r.user_id, r.seq)
            case FlagRecord():
                self.flags[r.user_id] = r.reason or "flagged"
            case UnflagRecord():
                self.flags.pop(r.user_id, None)
            case RevokeTokensRecord():
                self.revoked[r.user_id] = max(r.at, self.revoked.get(r.user_id, r.at))
            case _:
                raise TypeError(f"no way to apply a {type(r).__name__}")
        if r.display_name is not None and r.user_id not in self.names:
            self.names[r.user_id] = r.display_name
        self.remember(r)
        self.last_seq = r.seq
        self.last_at = max(self.last_at, r.at)

    def _score(self, board: str, user_id: str, prev: int, new: int, seq: int, at: float
               ) -> Ranking:
        ranking = self.boards.get(board)
        if ranking is None:  # a board removed from the config keeps its history
            ranking = self.boards[board] = Ranking(board)
            ranking.frozen |= self.frozen
        if new != prev or user_id not in ranking:  # an unchanged best keeps its tie order
            ranking.set(user_id, new, seq)
        if board in self.periods and self.periods[board] is None and board not in self.ended:
            self.periods[board] = self.defs[board].period_at(at)  # its first score opens it
        return ranking

    def _touch(self, user_id: str, seq: int, skip: Ranking | None = None) -> None:
        """A user's displayed name changed: boards showing them have a new version."""
        for b in self.boards.values():
            if b is not skip and user_id in b:
                b.version = max(b.version, seq)

    def remember(self, r: LogRecord) -> None:
        """Keep what later decisions need from a record: its key, quota hit, proof and
        abuse count."""
        for memory in self._memories:
            memory.remember(r)

    def remember_proof(self, jti: str, exp: float) -> None:
        """Spend a proof the log knows but memory had forgotten (the store's guard
        caught it)."""
        self.spent.add(jti, exp)

    def expire(self, now: float) -> None:
        """Forget what can no longer matter: old keys, closed quota windows, dead proofs,
        past minutes."""
        for memory in self._memories:
            memory.expire(now)

    # -- answering -----------------------------------------------------------------------

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

    # -- reading -------------------------------------------------------------------------

    def display_name(self, user_id: str) -> str:
        if user_id in self.anonymous:
            return ANONYMOUS
        return self.names.get(user_id) or user_id

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
            "closed": [(r.board, r.period, list(b.ranks())) for r, b in self.closed],
            "last_seq": self.last_seq,
        }

    def memory_digest(self) -> dict[str, Any]:
        """What decisions remember of recent records, in a comparable form (tests).

        Not part of `state_digest`: recovery loads only the recent records, so a
        restored engine remembers less than one that replayed the whole log."""
        return {type(m).__name__: m.digest() for m in self._memories}

