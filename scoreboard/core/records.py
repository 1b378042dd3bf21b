"""What the action log holds, and the derived rows stored beside it.

A record is one committed change, a frozen class per kind (all of them `LogRecord`s);
the log is the write-ahead log and the audit trail at once. `ScoreRow` and `UserRow` are
the current state the engine derives from the log; storage writes them in the same
transaction as the records so that a restart loads them directly instead of replaying
millions of records.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple, Protocol

from scoreboard.core.boards import BoardDef
from scoreboard.core.frozen import quick_init


class Kind(StrEnum):
    """The name of each record kind, as the log, the event feed and NATS subjects spell it."""

    ACTION = "action"  # a user reported an action; points come from the rules
    ADJUST = "adjust"  # an administrator changed a score by a delta, with a reason
    FREEZE = "freeze"  # an administrator (or the abuse monitor) froze a user
    UNFREEZE = "unfreeze"
    HIDE_NAME = "hide_name"  # the user asked to appear as anonymous
    SHOW_NAME = "show_name"
    FLAG = "flag"  # the abuse monitor marked the user, with the reason
    UNFLAG = "unflag"  # an administrator cleared the flag
    REVOKE_TOKENS = "revoke_tokens"  # every token of the user issued up to `at` is refused
    PERIOD_CLOSED = "period_closed"  # a board's period ended (by the clock or an admin)
    BOARD_DEFINED = "board_defined"  # an administrator created or changed a board
    STANDING_REMOVED = "standing_removed"  # an administrator took a user off a board
    PERIOD_EXCLUSION = "period_exclusion"  # an administrator took a user off a closed period


@dataclass(frozen=True, slots=True)
class LogRecord:
    """What every record has. Never made itself: each kind is a class of its own below."""

    seq: int
    at: float  # seconds since the epoch, decided by the writer
    board: str
    user_id: str
    display_name: str | None  # the user's name when the record was written


@dataclass(frozen=True, slots=True)
class ScoreRecord(LogRecord):
    """A change of one user's score on one board, idempotent by `client_action_id`."""

    delta: int
    prev_score: int
    new_score: int
    client_action_id: str


# What one action did on a board that follows the action's board: (board, prev_score,
# new_score). A plain tuple of plain values, not a named one: an action makes one per
# follower, and such a tuple costs a tenth of a named one to make and is left alone by
# the garbage collector once it has been seen (a named tuple is traced for as long as it
# lives).
BoardScore = tuple[str, int, int]


@quick_init  # one per action: built, and decoded from the log
@dataclass(frozen=True, slots=True)
class ActionRecord(ScoreRecord):
    """A user reported an action; `delta` is the change on `board` (the rule's points on
    a sum board). `also`: the same action on the boards that follow `board`."""

    action_type: str
    metadata: dict[str, Any] | None = None
    proof_jti: str | None = None  # the one-time proof it spent, kept until it expires
    proof_exp: float | None = None
    also: tuple[BoardScore, ...] = ()


@dataclass(frozen=True, slots=True)
class AdjustRecord(ScoreRecord):
    """An administrator changed a score by `delta`."""

    actor: str
    reason: str


@dataclass(frozen=True, slots=True)
class StandingRecord(LogRecord):
    """A change to a user's standing that leaves their score as it stood: `prev_score`
    and `new_score` both show the user's global score then (for history and events;
    replay ignores them)."""

    prev_score: int
    new_score: int


@dataclass(frozen=True, slots=True)
class ModerationRecord(StandingRecord):
    """A change to a user's standing, by `actor` (an administrator, the abuse monitor,
    or the user) for `reason`; written on the global board."""

    actor: str
    reason: str


@dataclass(frozen=True, slots=True)
class FreezeRecord(ModerationRecord):
    """The user can no longer score and leaves every board's order."""


@dataclass(frozen=True, slots=True)
class UnfreezeRecord(ModerationRecord):
    pass


@dataclass(frozen=True, slots=True)
class FlagRecord(ModerationRecord):
    """The abuse monitor marked the user; `reason` says which threshold they passed."""


@dataclass(frozen=True, slots=True)
class UnflagRecord(ModerationRecord):
    pass


@dataclass(frozen=True, slots=True)
class RevokeTokensRecord(ModerationRecord):
    """Every token of the user issued up to `at` is refused."""


@dataclass(frozen=True, slots=True)
class PeriodClosedRecord(LogRecord):
    """The board's current period ended: its standings are final (archived from the
    log) and the next period, if any, starts empty. Written by the writer when its clock
    passes `ends_at`, or by an administrator's reset (`actor`, `reason`); `user_id` is
    empty. No next period: the board's season is over and it is closed. `top` holds the
    final standings' first `CLOSED_TOP` entries as (user, score, rank) and `total_users`
    how many were ranked, decided with the close so that the event is one of the log."""

    period: str
    starts_at: float
    ends_at: float
    next_period: str | None
    next_starts_at: float | None
    next_ends_at: float | None
    actor: str | None = None
    reason: str | None = None
    top: tuple[tuple[str, int, int], ...] = ()
    total_users: int = 0


@dataclass(frozen=True, slots=True)
class BoardDefinedRecord(LogRecord):
    """An administrator created the board `board` at run time (or changed its title or
    moved its end later); `user_id` is empty."""

    definition: BoardDef
    actor: str
    reason: str


@dataclass(frozen=True, slots=True)
class StandingRemovedRecord(ModerationRecord):
    """An administrator took the user off the current period of `board`."""


@dataclass(frozen=True, slots=True)
class PeriodExclusionRecord(ModerationRecord):
    """An administrator took the user out of the closed period `period` of `board`: its
    archive is re-ranked without them (the close and its archive stay in the log).
    `prev_score` and `new_score` both show the user's final score in that period."""

    period: str


@dataclass(frozen=True, slots=True)
class HideNameRecord(StandingRecord):
    """The user asked to appear as anonymous."""


@dataclass(frozen=True, slots=True)
class ShowNameRecord(StandingRecord):
    pass


# The one table of kinds: every class a record can be, by the name the log gives it.
RECORD_TYPES: dict[Kind, type[LogRecord]] = {
    Kind.ACTION: ActionRecord,
    Kind.ADJUST: AdjustRecord,
    Kind.FREEZE: FreezeRecord,
    Kind.UNFREEZE: UnfreezeRecord,
    Kind.HIDE_NAME: HideNameRecord,
    Kind.SHOW_NAME: ShowNameRecord,
    Kind.FLAG: FlagRecord,
    Kind.UNFLAG: UnflagRecord,
    Kind.REVOKE_TOKENS: RevokeTokensRecord,
    Kind.PERIOD_CLOSED: PeriodClosedRecord,
    Kind.BOARD_DEFINED: BoardDefinedRecord,
    Kind.STANDING_REMOVED: StandingRemovedRecord,
    Kind.PERIOD_EXCLUSION: PeriodExclusionRecord,
}
_KIND_OF: dict[type[LogRecord], Kind] = {cls: kind for kind, cls in RECORD_TYPES.items()}


def kind_of(r: LogRecord) -> Kind:
    """The kind name of a record (for codecs and subjects; decisions go by type)."""
    return _KIND_OF[type(r)]


class ScoreRow(NamedTuple):
    """A user's current score on a board and the seq of the record that produced it.

    Rows are named tuples, not dataclasses: recovery builds millions of them, and a
    tuple costs a third of the time to make."""

    board: str
    user_id: str
    score: int
    reached_seq: int


class UserRow(NamedTuple):
    user_id: str
    display_name: str | None
    frozen: bool
    hidden: bool
    flag: str | None = None  # why the abuse monitor flagged the user, if it did
    tokens_revoked_at: float | None = None  # tokens issued up to this moment are refused


@dataclass(frozen=True, slots=True)
class CommitBatch:
    """Everything one transaction writes: new records and the rows they change."""

    records: tuple[LogRecord, ...]
    # In `ScoreRow`'s field order; the engine makes plain tuples (see `BoardScore`).
    scores: tuple[tuple[str, str, int, int], ...]
    users: tuple[UserRow, ...]

    @property
    def last_seq(self) -> int:
        return self.records[-1].seq


# What recovery reads of boards from the log rather than from the current rows.
BoardRecord = PeriodClosedRecord | BoardDefinedRecord | StandingRemovedRecord


class SnapshotSink(Protocol):
    """Where recovery streams what it loads, a chunk at a time, in this order: first,
    once, in seq order, the last `period_closed` record of each board with every
    `board_defined` and `standing_removed` record, and the `at` of the last record
    (0 for an empty log), then every score row, every user row, then the recent records
    whose memory matters (idempotency keys, quota windows, unexpired proofs); last
    `end`, once, when all of it came from one consistent snapshot of the log.

    Rows are sequences in the field order of `ScoreRow` and `UserRow` (a database
    driver's own rows will do: recovery handles millions, and converting each one
    would cost time and memory for nothing)."""

    def periods(self, closes: Sequence[BoardRecord], last_at: float) -> None: ...
    def scores(self, rows: Sequence[Sequence[Any]]) -> None: ...
    def users(self, rows: Sequence[Sequence[Any]]) -> None: ...
    def recent(self, records: Sequence[LogRecord]) -> None: ...
    def end(self, last_seq: int) -> None: ...


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A whole snapshot in memory, for tests and tools; recovery streams instead."""

    last_seq: int
    scores: list[ScoreRow]
    users: list[UserRow]
    recent: list[LogRecord]
    closes: list[BoardRecord] = field(default_factory=list)
    last_at: float = 0.0

    def feed(self, sink: SnapshotSink) -> None:
        """Give the snapshot to `sink` as one chunk of each."""
        sink.periods(self.closes, self.last_at)
        sink.scores(self.scores)
        sink.users(self.users)
        sink.recent(self.recent)
        sink.end(self.last_seq)
