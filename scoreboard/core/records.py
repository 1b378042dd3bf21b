"""What the action log holds, and the derived rows stored beside it.

A `LogRecord` is one committed change; the log is the write-ahead log and the audit
trail at once. `ScoreRow` and `UserRow` are the current state the engine derives from
the log; storage writes them in the same transaction as the records so that a restart
loads them directly instead of replaying millions of records.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple, Protocol


class Kind(StrEnum):
    ACTION = "action"  # a user reported an action; points come from the rules
    ADJUST = "adjust"  # an administrator changed a score by a delta, with a reason
    FREEZE = "freeze"  # an administrator froze a user
    UNFREEZE = "unfreeze"
    HIDE_NAME = "hide_name"  # the user asked to appear as anonymous
    SHOW_NAME = "show_name"
    FLAG = "flag"  # the abuse monitor marked the user, with the reason
    UNFLAG = "unflag"  # an administrator cleared the flag
    REVOKE_TOKENS = "revoke_tokens"  # every token of the user issued up to `at` is refused


SCORE_KINDS = frozenset({Kind.ACTION, Kind.ADJUST})


@dataclass(frozen=True, slots=True)
class LogRecord:
    seq: int
    at: float  # seconds since the epoch, decided by the writer
    board: str
    user_id: str
    kind: str
    action_type: str | None = None
    client_action_id: str | None = None
    delta: int = 0
    prev_score: int = 0
    new_score: int = 0
    display_name: str | None = None
    metadata: dict[str, Any] | None = None
    actor: str | None = None  # who made an administrative change
    reason: str | None = None
    proof_jti: str | None = None
    proof_exp: float | None = None


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
    scores: tuple[ScoreRow, ...]
    users: tuple[UserRow, ...]

    @property
    def last_seq(self) -> int:
        return self.records[-1].seq


class SnapshotSink(Protocol):
    """Where recovery streams what it loads, a chunk at a time, in this order: every
    score row, every user row, then the recent records whose memory matters
    (idempotency keys, quota windows, unexpired proofs); last `end`, once, when all of
    it came from one consistent snapshot of the log.

    Rows are sequences in the field order of `ScoreRow` and `UserRow` (a database
    driver's own rows will do: recovery handles millions, and converting each one
    would cost time and memory for nothing)."""

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

    def feed(self, sink: SnapshotSink) -> None:
        """Give the snapshot to `sink` as one chunk of each."""
        sink.scores(self.scores)
        sink.users(self.users)
        sink.recent(self.recent)
        sink.end(self.last_seq)
