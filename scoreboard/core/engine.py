"""The engine: all state that decides whether a change is accepted, and the rankings.

`decide(command, now, pending)` checks a command against the committed state plus the
changes already decided in the same batch (`pending`) and returns the record it would
append, or a `Replay` of an earlier identical action, or raises a `Rejection`. It never
changes the committed state. `apply(record)` is the only thing that does, never fails,
and is all recovery needs: replaying the log through `apply` rebuilds the state.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from scoreboard.core import errors
from scoreboard.core.commands import (
    AdjustScore,
    ClearFlag,
    Command,
    SetFrozen,
    SetNameHidden,
    SubmitAction,
)
from scoreboard.core.ranking import MAX_SCORE, Ranking
from scoreboard.core.records import (
    SCORE_KINDS,
    CommitBatch,
    Kind,
    LogRecord,
    ScoreRow,
    Snapshot,
    UserRow,
)
from scoreboard.core.rules import AbuseLimits, RuleSet

ANONYMOUS = "Anonymous"
MONITOR = "abuse-monitor"  # the actor named on records the abuse monitor writes


@dataclass(frozen=True, slots=True)
class Replay:
    """The command repeats an action already in the log (record `seq`)."""

    seq: int


def fingerprint(kind: str, board: str, what: object, extra: Mapping[str, Any] | None) -> int:
    """What must match for a repeated key to count as the same request."""
    body = orjson.dumps(extra, option=orjson.OPT_SORT_KEYS) if extra else b""
    return hash((kind, board, what, body))


def record_fingerprint(r: LogRecord) -> int:
    if r.kind == Kind.ADJUST:
        return fingerprint(r.kind, r.board, r.delta, {"reason": r.reason})
    return fingerprint(r.kind, r.board, r.action_type, r.metadata)


def command_fingerprint(c: SubmitAction | AdjustScore) -> int:
    if isinstance(c, AdjustScore):
        return fingerprint(Kind.ADJUST, c.board, c.delta, {"reason": c.reason})
    return fingerprint(Kind.ACTION, c.board, c.action_type, c.metadata)


@dataclass(slots=True)
class Pending:
    """Changes decided for the batch being committed, not yet visible to readers."""

    next_seq: int
    records: list[LogRecord] = field(default_factory=list)
    scores: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)
    users: dict[str, UserRow] = field(default_factory=dict)
    keys: dict[tuple[str, str], int] = field(default_factory=dict)  # key → fingerprint
    quota_hits: dict[tuple[str, str], int] = field(default_factory=dict)
    jtis: set[str] = field(default_factory=set)
    activity: dict[str, tuple[int, int]] = field(default_factory=dict)  # user → (n, points)

    def __len__(self) -> int:
        return len(self.records)


class Engine:
    def __init__(
        self,
        rules: RuleSet,
        boards: Iterable[str] = ("global",),
        *,
        retention: float = 3600.0,
        max_keys: int = 200_000,
        abuse: AbuseLimits | None = None,
    ) -> None:
        self.rules = rules
        self.abuse = abuse if abuse is not None and abuse.enabled else None
        self.boards: dict[str, Ranking] = {b: Ranking(b) for b in boards}
        self.boards.setdefault("global", Ranking("global"))
        self.retention = retention
        self.max_keys = max_keys
        self.last_seq = 0
        self.last_at = 0.0
        self.names: dict[str, str] = {}
        self.frozen: set[str] = set()
        self.hidden: set[str] = set()
        self.flags: dict[str, str] = {}  # user → why the abuse monitor flagged them
        # user → [minute, actions, points] for the abuse monitor, oldest minute first
        self.activity: OrderedDict[str, list[int]] = OrderedDict()
        # (user, clientActionId) → (seq, fingerprint, at), oldest first
        self.keys: OrderedDict[tuple[str, str], tuple[int, int, float]] = OrderedDict()
        # (user, actionType) → times of accepted actions inside the rule's window
        self.quota_hits: dict[tuple[str, str], deque[float]] = {}
        self._quota_order: dict[str, deque[tuple[float, str]]] = {}
        self.spent: OrderedDict[str, float] = OrderedDict()  # proof jti → exp

    # -- deciding ------------------------------------------------------------------------

    def decide(self, cmd: Command, now: float, pending: Pending) -> LogRecord | Replay:
        if isinstance(cmd, SubmitAction):
            return self._decide_action(cmd, now, pending)
        if isinstance(cmd, AdjustScore):
            return self._decide_adjust(cmd, now, pending)
        if isinstance(cmd, SetFrozen):
            return self._decide_user_flag(cmd, now, pending)
        if isinstance(cmd, SetNameHidden | ClearFlag):
            return self._decide_user_flag(cmd, now, pending)
        raise errors.InvalidCommand(f"unsupported command {type(cmd).__name__}")

    def _check_key(self, cmd: SubmitAction | AdjustScore, pending: Pending) -> Replay | None:
        key = (cmd.user_id, cmd.client_action_id)
        fp = command_fingerprint(cmd)
        known = pending.keys.get(key)
        if known is not None:
            if known != fp:
                raise errors.IdempotencyConflict(
                    "clientActionId was already used with a different payload"
                )
            seq = next(r.seq for r in pending.records if r.client_action_id == key[1]
                       and r.user_id == key[0])
            return Replay(seq)
        entry = self.keys.get(key)
        if entry is not None:
            if entry[1] != fp:
                raise errors.IdempotencyConflict(
                    "clientActionId was already used with a different payload"
                )
            return Replay(entry[0])
        return None

    def _board(self, board: str) -> Ranking:
        ranking = self.boards.get(board)
        if ranking is None:
            raise errors.InvalidCommand(f"unknown board {board!r}")
        return ranking

    def _current(self, board: str, user_id: str, pending: Pending) -> int:
        hit = pending.scores.get((board, user_id))
        if hit is not None:
            return hit[0]
        return self.boards[board].score(user_id) or 0

    def _user(self, user_id: str, pending: Pending) -> UserRow:
        row = pending.users.get(user_id)
        if row is not None:
            return row
        return UserRow(
            user_id,
            self.names.get(user_id),
            user_id in self.frozen,
            user_id in self.hidden,
            self.flags.get(user_id),
        )

    def _decide_action(self, cmd: SubmitAction, now: float, pending: Pending) -> LogRecord | Replay:
        rule = self.rules.get(cmd.action_type)
        if rule is None:
            raise errors.UnknownAction(f"unknown actionType {cmd.action_type!r}")
        self._board(cmd.board)
        replay = self._check_key(cmd, pending)
        if replay is not None:
            return replay
        user = self._user(cmd.user_id, pending)
        if user.frozen:
            raise errors.UserFrozen("this user is frozen and cannot score")
        jti = exp = None
        if rule.proof_required:
            proof = cmd.proof
            if proof is None:
                raise errors.ProofInvalid(f"{cmd.action_type} requires an action proof")
            if proof.sub != cmd.user_id or proof.act != cmd.action_type:
                raise errors.ProofInvalid("the proof was issued for another user or action")
            if proof.exp < now:
                raise errors.ProofInvalid("the proof has expired")
            if proof.jti in self.spent or proof.jti in pending.jtis:
                raise errors.ProofReused("this proof was already used")
            jti, exp = proof.jti, proof.exp
        if rule.quota is not None:
            qkey = (cmd.user_id, cmd.action_type)
            hits = self._prune(qkey, now - rule.quota.window)
            used = len(hits) + pending.quota_hits.get(qkey, 0)
            if used >= rule.quota.limit:
                oldest = hits[0] if hits else now
                raise errors.QuotaExceeded(
                    f"{cmd.action_type} is limited to {rule.quota.limit} per "
                    f"{rule.quota.window:g} s",
                    retry_after=max(1.0, oldest + rule.quota.window - now),
                )
        record = self._score_record(
            pending, now, cmd.board, cmd.user_id, rule.points,
            kind=Kind.ACTION,
            display_name=cmd.display_name or user.display_name,
            action_type=cmd.action_type,
            client_action_id=cmd.client_action_id,
            metadata=cmd.metadata,
            proof_jti=jti,
            proof_exp=exp,
        )
        pending.keys[(cmd.user_id, cmd.client_action_id)] = command_fingerprint(cmd)
        if rule.quota is not None:
            qkey = (cmd.user_id, cmd.action_type)
            pending.quota_hits[qkey] = pending.quota_hits.get(qkey, 0) + 1
        if jti is not None:
            pending.jtis.add(jti)
        if self.abuse is not None:
            self._watch(cmd.user_id, rule.points, now, pending)
        return record

    def _watch(self, user_id: str, points: int, now: float, pending: Pending) -> None:
        """Flag (and optionally freeze) a user whose last minute passes a threshold."""
        assert self.abuse is not None
        minute = int(now // 60)
        entry = self.activity.get(user_id)
        count, total = (entry[1], entry[2]) if entry is not None and entry[0] == minute else (0, 0)
        n, p = pending.activity.get(user_id, (0, 0))
        pending.activity[user_id] = (n + 1, p + points)
        count, total = count + n + 1, total + p + points
        user = self._user(user_id, pending)
        if user.flag is not None:
            return
        limits = self.abuse
        if limits.actions_per_minute and count > limits.actions_per_minute:
            reason = f"{count} actions within a minute (threshold {limits.actions_per_minute})"
        elif limits.points_per_minute and total > limits.points_per_minute:
            reason = f"{total} points within a minute (threshold {limits.points_per_minute})"
        else:
            return
        user = user._replace(flag=reason)
        self._user_record(pending, now, user, Kind.FLAG, actor=MONITOR, reason=reason)
        if limits.auto_freeze and not user.frozen:
            user = user._replace(frozen=True)
            self._user_record(pending, now, user, Kind.FREEZE, actor=MONITOR,
                              reason=f"automatic: {reason}")

    def _user_record(self, pending: Pending, now: float, row: UserRow, kind: Kind, *,
                     actor: str | None, reason: str | None) -> LogRecord:
        record = LogRecord(
            seq=pending.next_seq, at=now, board="global", user_id=row.user_id, kind=kind,
            actor=actor, reason=reason, display_name=row.display_name,
        )
        pending.next_seq += 1
        pending.records.append(record)
        pending.users[row.user_id] = row
        return record

    def _decide_adjust(self, cmd: AdjustScore, now: float, pending: Pending) -> LogRecord | Replay:
        self._board(cmd.board)
        if cmd.delta == 0:
            raise errors.InvalidCommand("delta must not be 0")
        replay = self._check_key(cmd, pending)
        if replay is not None:
            return replay
        user = self._user(cmd.user_id, pending)
        record = self._score_record(
            pending, now, cmd.board, cmd.user_id, cmd.delta,
            kind=Kind.ADJUST,
            display_name=user.display_name,
            client_action_id=cmd.client_action_id,
            actor=cmd.actor,
            reason=cmd.reason,
        )
        pending.keys[(cmd.user_id, cmd.client_action_id)] = command_fingerprint(cmd)
        return record

    def _score_record(
        self, pending: Pending, now: float, board: str, user_id: str, delta: int,
        **fields: Any,
    ) -> LogRecord:
        prev = self._current(board, user_id, pending)
        new = prev + delta
        if not -MAX_SCORE <= new <= MAX_SCORE:
            raise errors.InvalidCommand("the score would leave the range ±(2^53-1)")
        seq = pending.next_seq
        record = LogRecord(
            seq=seq, at=now, board=board, user_id=user_id, delta=delta,
            prev_score=prev, new_score=new, **fields,
        )
        pending.next_seq += 1
        pending.records.append(record)
        pending.scores[(board, user_id)] = (new, seq)
        user = self._user(user_id, pending)
        name = fields.get("display_name")
        if name is not None and name != user.display_name:
            pending.users[user_id] = user._replace(display_name=name)
        elif user_id not in self.names and user_id not in pending.users:
            pending.users[user_id] = user
        return record

    def _decide_user_flag(
        self, cmd: SetFrozen | SetNameHidden | ClearFlag, now: float, pending: Pending
    ) -> LogRecord:
        user = self._user(cmd.user_id, pending)
        known = user.user_id in self.names or user.user_id in pending.users or any(
            user.user_id in b for b in self.boards.values()
        )
        if not known:
            raise errors.NotFound(f"no user {cmd.user_id!r}")
        if isinstance(cmd, SetFrozen):
            kind = Kind.FREEZE if cmd.frozen else Kind.UNFREEZE
            return self._user_record(pending, now, user._replace(frozen=cmd.frozen), kind,
                                     actor=cmd.actor, reason=cmd.reason)
        if isinstance(cmd, ClearFlag):
            return self._user_record(pending, now, user._replace(flag=None), Kind.UNFLAG,
                                     actor=cmd.actor, reason=cmd.reason)
        kind = Kind.HIDE_NAME if cmd.hidden else Kind.SHOW_NAME
        return self._user_record(pending, now, user._replace(hidden=cmd.hidden), kind,
                                 actor=None, reason=None)

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
        """Make a committed record part of the state. Never fails."""
        kind = r.kind
        if kind in SCORE_KINDS:
            ranking = self.boards.get(r.board)
            if ranking is None:  # a board removed from the config keeps its history
                ranking = self.boards[r.board] = Ranking(r.board)
                ranking.hidden |= self.frozen
            ranking.set(r.user_id, r.new_score, r.seq)
            if r.display_name is not None and self.names.get(r.user_id) != r.display_name:
                self.names[r.user_id] = r.display_name
                self._touch(r.user_id, r.seq, skip=ranking)
        elif kind == Kind.FREEZE:
            self.frozen.add(r.user_id)
            for b in self.boards.values():
                b.hide(r.user_id, r.seq)
        elif kind == Kind.UNFREEZE:
            self.frozen.discard(r.user_id)
            for b in self.boards.values():
                b.show(r.user_id, r.seq)
        elif kind in (Kind.HIDE_NAME, Kind.SHOW_NAME):
            (self.hidden.add if kind == Kind.HIDE_NAME else self.hidden.discard)(r.user_id)
            self._touch(r.user_id, r.seq)
        elif kind == Kind.FLAG:
            self.flags[r.user_id] = r.reason or "flagged"
        elif kind == Kind.UNFLAG:
            self.flags.pop(r.user_id, None)
        if r.user_id not in self.names and r.display_name is not None:
            self.names[r.user_id] = r.display_name
        self.remember(r)
        self.last_seq = r.seq
        self.last_at = max(self.last_at, r.at)

    def _touch(self, user_id: str, seq: int, skip: Ranking | None = None) -> None:
        """A user's displayed name changed: boards showing them have a new version."""
        for b in self.boards.values():
            if b is not skip and user_id in b:
                b.version = max(b.version, seq)

    def remember(self, r: LogRecord) -> None:
        """Keep what later decisions need from a record: its key, quota hit and proof."""
        if r.client_action_id is not None:
            key = (r.user_id, r.client_action_id)
            self.keys[key] = (r.seq, record_fingerprint(r), r.at)
            self.keys.move_to_end(key)
            while len(self.keys) > self.max_keys:
                self.keys.popitem(last=False)
        if r.kind == Kind.ACTION and r.action_type is not None:
            rule = self.rules.get(r.action_type)
            if rule is not None and rule.quota is not None:
                qkey = (r.user_id, r.action_type)
                self.quota_hits.setdefault(qkey, deque()).append(r.at)
                self._quota_order.setdefault(r.action_type, deque()).append((r.at, r.user_id))
        if r.proof_jti is not None and r.proof_exp is not None:
            self.spent[r.proof_jti] = r.proof_exp
        if self.abuse is not None and r.kind == Kind.ACTION:
            minute = int(r.at // 60)
            entry = self.activity.get(r.user_id)
            if entry is None or entry[0] != minute:
                self.activity[r.user_id] = [minute, 1, r.delta]
                self.activity.move_to_end(r.user_id)
            else:
                entry[1] += 1
                entry[2] += r.delta

    def _prune(self, qkey: tuple[str, str], horizon: float) -> deque[float]:
        hits = self.quota_hits.get(qkey)
        if hits is None:
            return deque()
        while hits and hits[0] <= horizon:
            hits.popleft()
        return hits

    def expire(self, now: float) -> None:
        """Forget what can no longer matter: old keys, closed quota windows, dead proofs."""
        horizon = now - self.retention
        keys = self.keys
        while keys:
            key, (_, _, at) = next(iter(keys.items()))
            if at >= horizon:
                break
            del keys[key]
        for action_type, order in self._quota_order.items():
            rule = self.rules.get(action_type)
            window = rule.quota.window if rule is not None and rule.quota else 0.0
            while order and order[0][0] <= now - window:
                at, user_id = order.popleft()
                qkey = (user_id, action_type)
                hits = self._prune(qkey, now - window)
                if not hits:
                    self.quota_hits.pop(qkey, None)
        while self.spent:
            jti, exp = next(iter(self.spent.items()))
            if exp >= now:
                break
            del self.spent[jti]
        minute = int(now // 60)
        while self.activity:
            user_id, entry = next(iter(self.activity.items()))
            if entry[0] >= minute:
                break
            del self.activity[user_id]

    def restore(self, snapshot: Snapshot) -> None:
        """Load the stored current rows and the recent records into an empty engine."""
        names = self.names
        # One string object per user id, shared by the names and the rankings: the
        # score rows and user rows arrive as separate copies of every id.
        canon: dict[str, str] = {}
        for user_id, name, frozen, hidden, flag in snapshot.users:
            canon[user_id] = user_id
            if name is not None:
                names[user_id] = name
            if frozen:
                self.frozen.add(user_id)
            if hidden:
                self.hidden.add(user_id)
            if flag is not None:
                self.flags[user_id] = flag
        boards = {row[0] for row in snapshot.scores}
        if len(boards) == 1:  # the common case: one pass, no regrouping
            self._load_board(
                boards.pop(),
                ((canon.get(r[1], r[1]), r[2], r[3]) for r in snapshot.scores),
                snapshot.last_seq,
            )
        else:
            by_board: dict[str, list[tuple[str, int, int]]] = {}
            for b, user_id, score, seq in snapshot.scores:
                by_board.setdefault(b, []).append((canon.get(user_id, user_id), score, seq))
            for b, rows in by_board.items():
                self._load_board(b, rows, snapshot.last_seq)
        for r in snapshot.recent:
            self.remember(r)
            self.last_at = max(self.last_at, r.at)
        self.last_seq = snapshot.last_seq
        for ranking in self.boards.values():  # empty boards too: see Ranking.version
            ranking.version = max(ranking.version, snapshot.last_seq)

    def _load_board(self, board: str, rows: Iterable[tuple[str, int, int]],
                    version: int) -> None:
        ranking = self.boards.get(board)
        if ranking is None:
            ranking = self.boards[board] = Ranking(board)
        ranking.hidden |= self.frozen
        ranking.load(rows, version)

    # -- reading -------------------------------------------------------------------------

    def display_name(self, user_id: str) -> str:
        if user_id in self.hidden:
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
            "hidden": sorted(self.hidden),
            "flags": dict(sorted(self.flags.items())),
            "last_seq": self.last_seq,
        }
