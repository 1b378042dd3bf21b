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

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from scoreboard.core import errors
from scoreboard.core.abuse import MONITOR, AbuseMonitor
from scoreboard.core.board_times import BoardTimes
from scoreboard.core.boards import BoardDef, check_boards
from scoreboard.core.commands import (
    AdjustScore,
    ClearFlag,
    Command,
    DefineBoard,
    ExcludeFromPeriod,
    RemoveStanding,
    ResetBoard,
    RevokeTokens,
    SetFrozen,
    SetNameHidden,
    SubmitAction,
)
from scoreboard.core.follows import NONE, Follows
from scoreboard.core.idempotency import IdempotencyKeys, Replay, command_fingerprint
from scoreboard.core.names import Names
from scoreboard.core.pending import ROLLED, Pending
from scoreboard.core.periods import Period
from scoreboard.core.queries import ANONYMOUS, EngineQueries
from scoreboard.core.quotas import QuotaWindows
from scoreboard.core.ranking import MAX_SCORE, Ranking
from scoreboard.core.records import (
    ActionRecord,
    AdjustRecord,
    BoardDefinedRecord,
    CommitBatch,
    FlagRecord,
    FreezeRecord,
    HideNameRecord,
    LogRecord,
    PeriodClosedRecord,
    PeriodExclusionRecord,
    RevokeTokensRecord,
    ScoreRecord,
    ShowNameRecord,
    StandingRecord,
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

class Memory(Protocol):
    """What decisions remember of recent records, each part forgetting on its own."""

    def remember(self, r: LogRecord) -> None: ...
    def expire(self, now: float) -> None: ...
    def digest(self) -> Any: ...


class Engine(BoardTimes, Follows, EngineQueries):
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
        self.defined: dict[str, BoardDef] = {}  # by an administrator, at run time
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
        # The boards whose scores come from a group's rows while `apply_group` applies
        # it (the records leave them alone); none otherwise.
        self._from_rows = NONE
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
        if isinstance(cmd, ExcludeFromPeriod):
            return self._decide_exclude(cmd, now, pending)
        raise errors.InvalidCommand(f"unsupported command {type(cmd).__name__}")

    def _board(self, board: str) -> Ranking:
        ranking = self.boards.get(board)
        if ranking is None:
            raise errors.NotFound(f"no board {board!r}")
        return ranking

    def _current(self, board: str, user_id: str, pending: Pending) -> int | None:
        """The user's score on the board's current period, None when they have none."""
        hit = pending.score(board, user_id)
        if hit is None:
            return self.boards[board].score(user_id)
        if hit is ROLLED:  # the period closed in a pending group (a fresh board), or the
            return None  # user was taken off it
        return hit[2]

    def _user(self, user_id: str, pending: Pending) -> UserRow:
        row = pending.user(user_id)
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
            raise self.rules.unknown(cmd.action_type)
        self._board(cmd.board)
        fp = self.keys.check(cmd, pending)
        if isinstance(fp, Replay):
            return fp
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
        elif cmd.value is not None:
            raise errors.InvalidCommand(
                f'{cmd.action_type} scores points, not a value (no value = "proof")')
        if rule.quota is not None:
            self.quotas.check(cmd.user_id, cmd.action_type, rule.quota, now, pending)
        followers = self.followers[cmd.board]
        also = self._also(followers, cmd.user_id, amount, now, pending) if followers else ()
        prev, new = self._scored(cmd.board, cmd.user_id, amount, pending)
        record = ActionRecord(  # positional, in field order: the hot path, and cheaper
            pending.next_seq, now, cmd.board, cmd.user_id, cmd.display_name or user.display_name,
            new - prev, prev, new, cmd.client_action_id, cmd.action_type, cmd.metadata,
            None if proof is None else proof.jti, None if proof is None else proof.exp, also,
        )
        self._add_score(pending, record, user)
        self.keys.hold(cmd, fp, record.seq, pending)
        if rule.quota is not None:
            self.quotas.hold(cmd.user_id, cmd.action_type, pending)
        if proof is not None:
            self.spent.hold(proof.jti, pending)
        if self.abuse is not None:
            self._watch(self.abuse, user, rule.points, now, pending)
        return record

    def _watch(self, monitor: AbuseMonitor, seen: UserRow, points: int, now: float,
               pending: Pending) -> None:
        """Flag (and optionally freeze) a user whose last minute passes a threshold.
        `seen`: the user as the action's decision found them; only this can flag them
        since, so a user flagged already is counted and left as they are (nearly every
        action of a flagged user), with no reason worded and no row looked up again."""
        user_id = seen.user_id
        count, total = monitor.count(user_id, points, now, pending)
        if seen.flag is not None:
            return
        reason = monitor.reason(count, total)
        if reason is None:
            return
        user = self._user(user_id, pending)  # as the batch has it now (the action's name)
        if user.flag is not None:
            return
        user = user._replace(flag=reason)
        self._user_record(pending, now, user, FlagRecord, actor=MONITOR, reason=reason)
        if monitor.auto_freeze and not user.frozen:
            user = user._replace(frozen=True)
            self._user_record(pending, now, user, FreezeRecord, actor=MONITOR,
                              reason=f"automatic: {reason}")

    def _known(self, user_id: str, pending: Pending) -> bool:
        """Whether the user is on a board, named or has a standing, committed or in the
        chain of pending groups (a score pending on a board counts as on it)."""
        if user_id in self.names or pending.user(user_id) is not None:
            return True
        return any(user_id in b or pending.score(name, user_id) not in (None, ROLLED)
                   for name, b in self.boards.items())

    def _user_record(self, pending: Pending, now: float, row: UserRow,
                     cls: type[StandingRecord], **fields: str) -> LogRecord:
        """`fields`: the actor and reason of a `ModerationRecord`."""
        # The score is unchanged: the record shows it as it stood (history, events).
        score = self._current("global", row.user_id, pending) or 0
        record = cls(
            seq=pending.next_seq, at=now, board="global", user_id=row.user_id,
            display_name=row.display_name, prev_score=score, new_score=score, **fields,
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
        fp = self.keys.check(cmd, pending)
        if isinstance(fp, Replay):
            return fp
        user = self._user(cmd.user_id, pending)
        if not cmd.create and not self._known(cmd.user_id, pending):
            raise errors.NotFound(f"no user {cmd.user_id!r}; send \"create\": true to add them")
        prev = self._current(cmd.board, cmd.user_id, pending) or 0
        record = AdjustRecord(
            seq=pending.next_seq, at=now, board=cmd.board, user_id=cmd.user_id,
            display_name=user.display_name, delta=cmd.delta, prev_score=prev,
            new_score=self._within_range(prev + cmd.delta),
            client_action_id=cmd.client_action_id, actor=cmd.actor, reason=cmd.reason,
        )
        self._add_score(pending, record, user)
        self.keys.hold(cmd, fp, record.seq, pending)
        return record

    def _check_open(self, board: str, now: float) -> None:
        d = self.defs[board]
        if board in self.ended or not d.open_at(now):
            raise errors.BoardClosed(f"the board {board!r} counts no actions now")

    def _scored(self, board: str, user_id: str, amount: int, pending: Pending
                ) -> tuple[int, int]:
        """(prev, new) of the user's score on `board` after an action worth `amount`,
        by the board's operator; prev is 0 when they had none. Once per board an action
        scores on: `_current` written out."""
        hit = pending.score(board, user_id)
        if hit is None:
            prev = self.boards[board].score(user_id)
        else:
            prev = None if hit is ROLLED else hit[2]
        operator = self.defs[board].operator
        if operator == "sum":
            new = amount if prev is None else prev + amount
        elif prev is None:  # the first score of `best` or `latest`
            new = amount
        elif operator == "best":
            new = self.boards[board].better(prev, amount)
        else:
            new = amount
        if not -MAX_SCORE <= new <= MAX_SCORE:
            raise errors.InvalidCommand("the score would leave the range ±(2^53-1)")
        return prev or 0, new

    @staticmethod
    def _within_range(score: int) -> int:
        if not -MAX_SCORE <= score <= MAX_SCORE:
            raise errors.InvalidCommand("the score would leave the range ±(2^53-1)")
        return score

    def _add_score(self, pending: Pending, record: ScoreRecord, user: UserRow) -> None:
        """Add a decided score change (at `pending.next_seq`) to the batch, with what an
        action did on the boards that follow its board; `user` as `_user` gives it: the
        decision already looked it up."""
        user_id, display_name, seq = record.user_id, record.display_name, record.seq
        put = pending.put
        # An unchanged score (a best not beaten) keeps its seq.
        if record.new_score != record.prev_score \
                or self._current(record.board, user_id, pending) is None:
            put((record.board, user_id, record.new_score, seq))
        if isinstance(record, ActionRecord) and record.also:
            scores = pending.scores
            for b, old, score in record.also:
                if score != old or self._current(b, user_id, pending) is None:
                    board = scores.get(b)  # `put`, written out: once per follower
                    if board is None:
                        board = scores[b] = {}
                    board[user_id] = (b, user_id, score, seq)
        pending.next_seq += 1
        pending.records.append(record)
        # Only a row that says something is written: a user without a name or any
        # standing needs none (recovery reads every missing row as exactly that), so a
        # new user's first score costs no upsert.
        if display_name is not None and display_name != user.display_name:
            pending.users[user_id] = user._replace(display_name=display_name)

    def _decide_user_flag(
        self, cmd: SetFrozen | SetNameHidden | ClearFlag, now: float, pending: Pending
    ) -> LogRecord:
        """Privacy may be set before the first score (the user's own choice, recorded
        and so applied from their first score on); the others need a known user."""
        user = self._user(cmd.user_id, pending)
        if not isinstance(cmd, SetNameHidden) and not self._known(cmd.user_id, pending):
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

    def _decide_remove(self, cmd: RemoveStanding, now: float, pending: Pending) -> LogRecord:
        if cmd.board not in self.boards:
            raise errors.NotFound(f"no board {cmd.board!r}")
        score = self._current(cmd.board, cmd.user_id, pending)
        if score is None:
            raise errors.NotFound(f"user {cmd.user_id!r} is not on board {cmd.board!r}")
        user = self._user(cmd.user_id, pending)
        record = StandingRemovedRecord(pending.next_seq, now, cmd.board, cmd.user_id,
                                       user.display_name, score, 0, cmd.actor, cmd.reason)
        pending.next_seq += 1
        pending.records.append(record)
        pending.scores.get(cmd.board, {}).pop(cmd.user_id, None)
        pending.removed.add((cmd.board, cmd.user_id))
        return record

    def _decide_exclude(self, cmd: ExcludeFromPeriod, now: float, pending: Pending
                        ) -> LogRecord:
        """The edge found the user in the closed period's archive; the engine checks the
        board and logs it. The live state does not change: the archiver re-ranks."""
        if cmd.board not in self.boards:
            raise errors.NotFound(f"no board {cmd.board!r}")
        user = self._user(cmd.user_id, pending)
        record = PeriodExclusionRecord(pending.next_seq, now, cmd.board, cmd.user_id,
                                       user.display_name, cmd.score, cmd.score, cmd.actor,
                                       cmd.reason, cmd.period)
        pending.next_seq += 1
        pending.records.append(record)
        return record

    def new_pending(self, after: Pending | None = None) -> Pending:
        """A group decided on the committed state, or on top of `after`: a group that
        is decided but not committed yet (see `Pending`)."""
        if after is None:
            return Pending(next_seq=self.last_seq + 1)
        return after.then()

    def batch(self, pending: Pending) -> CommitBatch:
        """What one transaction must write for the pending changes."""
        # The pending scores are the rows as they are: an action on followed boards
        # makes one tuple per board, from decision to the store.
        return CommitBatch(tuple(pending.records), pending.rows(),
                           tuple(pending.users.values()))

    # -- applying ------------------------------------------------------------------------

    def apply(self, r: LogRecord) -> None:
        """Make a committed record part of the state. Never fails for a record of a
        kind the log knows (`RECORD_TYPES`)."""
        match r:
            case ScoreRecord():
                ranking = self._score(r.board, r.user_id, r.prev_score, r.new_score, r.seq,
                                      r.at)
                if isinstance(r, ActionRecord) and r.also and not self._from_rows:
                    self._followed(r)
                if r.display_name is not None and self.names.get(r.user_id) != r.display_name:
                    self.names[r.user_id] = r.display_name
                    self._touch(r.user_id, r.seq, skip=ranking)
            case PeriodClosedRecord():
                old = self.boards[r.board]
                self.closed.append((r, old))
                self.boards[r.board] = fresh = old.fresh()
                fresh.version = max(fresh.version, r.seq)
                self.follow(r)
            case BoardDefinedRecord():
                self.define(r.definition, r.seq)
            case StandingRemovedRecord():
                self.boards[r.board].remove(r.user_id, r.seq)
            case PeriodExclusionRecord():
                pass  # a closed period's archive, not the live state (the archiver's)
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
        if r.display_name is not None and not isinstance(r, ScoreRecord) \
                and r.user_id not in self.names:  # (a score's name is set above)
            self.names[r.user_id] = r.display_name
        for memory in self._memories:  # `remember`, written out: once per record
            memory.remember(r)
        self.last_seq = r.seq
        if r.at > self.last_at:
            self.last_at = r.at

    def apply_group(self, records: Sequence[LogRecord], pending: Pending) -> None:
        """Make a committed group part of the state: `records`, as `pending` decided
        them. The same state as `apply` per record, with less work per followed board
        (one that follows another, which actions score on through `also`): its ranking
        takes the group's rows for it first (`Ranking.set_rows`: the last score the
        group gave each user there, as the store wrote them), once per user, and the
        records then leave it alone. Per record instead when order within the group
        matters to such a board: a group that closes a period, takes a user off a board
        or defines one, or whose followed boards are not all ranked with a period open
        (their first score opens it)."""
        self._from_rows = self._rows_first(records, pending)
        try:
            for r in records:
                self.apply(r)
        finally:
            self._from_rows = NONE

    def settle(self) -> None:
        """Order what the records applied since the last call changed on the boards: in
        bulk, once per group the writer commits (a read of a board orders it anyway)."""
        for ranking in self.boards.values():
            ranking.settle()

    def _score(self, board: str, user_id: str, prev: int, new: int, seq: int, at: float
               ) -> Ranking:
        ranking = self.boards.get(board)
        if ranking is None:  # a board removed from the config keeps its history
            ranking = self.boards[board] = Ranking(board)
            ranking.frozen |= self.frozen
        # An unchanged best keeps its tie order; a board `apply_group` set from the
        # group's rows has its scores already.
        if (new != prev or user_id not in ranking._key_of) and board not in self._from_rows:
            ranking.set(user_id, new, seq)
        periods = self.periods
        if board in periods and periods[board] is None and board not in self.ended:
            periods[board] = self.defs[board].period_at(at)  # its first score opens it
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

    # -- reading -------------------------------------------------------------------------

    def memory_digest(self) -> dict[str, Any]:
        """What decisions remember of recent records, in a comparable form (tests).

        Not part of `state_digest`: recovery loads only the recent records, so a
        restored engine remembers less than one that replayed the whole log."""
        return {type(m).__name__: m.digest() for m in self._memories}

