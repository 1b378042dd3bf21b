"""The one storage interface: an append-only action log with derived current rows.

Implementations: `memory` (tests), `sqlite` (the embedded default), `postgres`
(production). All three pass the same contract suite in `tests/storage/`.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from scoreboard.core.records import (
    CommitBatch,
    LogRecord,
    PeriodClosedRecord,
    PeriodExclusionRecord,
    SnapshotSink,
)


class StoreError(Exception):
    """Base of the storage error tree."""


class StoreUnavailable(StoreError):
    """The database could not be reached or the transaction failed; nothing was written."""


class WriterLockHeld(StoreError):
    """Another process already writes to this database."""


class WriterFenced(StoreError):
    """This process lost the writer lock to another process (or never held it): it must
    never write again. Only a restart, which rebuilds from the log, may make it a writer."""


class DuplicateAction(StoreError):
    """A record's (user_id, client_action_id) is already in the log; nothing was written.

    The writer only meets this for keys older than its in-memory retention window.
    """

    def __init__(self, keys: Sequence[tuple[str, str]]) -> None:
        super().__init__(f"{len(keys)} action key(s) already in the log")
        self.keys = list(keys)


class DuplicateProof(StoreError):
    """A record's proof jti is already in the log (a replayed proof); nothing was written.

    Like `DuplicateAction`, the database unique index is the final guard behind the
    writer's in-memory set of spent proofs.
    """

    def __init__(self, jtis: Sequence[str]) -> None:
        super().__init__(f"{len(jtis)} proof jti(s) already in the log")
        self.jtis = list(jtis)


class ArchiveRow(NamedTuple):
    position: int  # 1, 2, 3 … in the standings' order (a keyset for paging)
    user_id: str
    score: int
    rank: int  # as it stood: equal scores share it under competition ranks


# An `ArchiveRow`'s values as a plain tuple, as the archiver writes them: the collector
# stops tracking a plain tuple of strings and numbers, never a named one, so a chunk of
# plain ones costs no time in the collections that run while it waits to be written.
ArchiveValues = tuple[int, str, int, int]


class ArchivedPeriod(NamedTuple):
    board: str
    period: str
    starts_at: float | None  # None: unbounded
    ends_at: float | None
    total_users: int
    closed_seq: int  # the seq of its period_closed record
    complete: bool  # every row of its standings is stored
    top: tuple[ArchiveRow, ...] = ()  # the first three, when read with `periods`


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    """A stored snapshot without its body."""

    seq: int  # the last record the image reflects
    created_at: float
    format: str
    checksum: str
    size: int  # bytes of the body


@dataclass(frozen=True, slots=True)
class StoredSnapshot:
    """A snapshot as the store keeps it (`scoreboard.storage.snapshots` makes and reads
    the body; the store only keeps it)."""

    seq: int
    created_at: float
    format: str
    checksum: str
    body: bytes


class ActionLog(abc.ABC):
    """An append-only log of `LogRecord`s plus the score and user rows derived from it."""

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect, create or migrate the schema, and take the single-writer lock.

        Raises `WriterLockHeld` when another process holds it, `StoreUnavailable` when
        the database cannot be reached.
        """

    @abc.abstractmethod
    async def close(self) -> None:
        """Release the writer lock and every connection. Safe to call twice."""

    @abc.abstractmethod
    async def append(self, batch: CommitBatch) -> None:
        """Write the batch's records and upsert its rows in one durable transaction.

        Either all of it is committed or none of it. Raises `DuplicateAction` when an
        action key already exists, `DuplicateProof` when a proof jti does,
        `StoreUnavailable` on any other failure.

        Retrying a batch after `StoreUnavailable` is safe: when every record of the
        batch is already in the log exactly as given (an earlier attempt committed but
        its answer was lost), `append` returns without writing anything again.
        """

    @abc.abstractmethod
    async def last_seq(self) -> int:
        """The highest committed seq, 0 for an empty log."""

    @abc.abstractmethod
    async def load(self, since: float, into: SnapshotSink, *, chunk: int = 10_000) -> None:
        """Stream one consistent snapshot into `into`, at most `chunk` rows at a time:
        every score row, every user row, then the records with `at >= since` or an
        unexpired proof (`proof_exp >= since`) in seq order; last `into.end(last_seq)`.

        Nothing is held beyond the chunk being handed over. Raises `StoreUnavailable`
        when the database fails part-way: `into` may have had part of the snapshot and
        `end` was not called, so start again with a fresh sink.
        """

    @abc.abstractmethod
    async def find_actions(self, keys: Sequence[tuple[str, str]]) -> list[LogRecord]:
        """The records holding these (user_id, client_action_id) keys, in seq order."""

    @abc.abstractmethod
    async def history(
        self, user_id: str, *, before_seq: int | None, limit: int
    ) -> list[LogRecord]:
        """A user's records, newest first, with seq < before_seq when given."""

    @abc.abstractmethod
    def scan(
        self, *, after: int | None = None, chunk: int = 10_000
    ) -> AsyncGenerator[list[LogRecord], None]:
        """Every record in seq order, in chunks (for `verify` and full replays); with
        `after`, only those with seq > after (catching up after an unclear failure). A
        caller that stops early closes it (`contextlib.aclosing`)."""

    @abc.abstractmethod
    async def ping(self) -> bool:
        """True when the database answers now."""

    # -- archives of closed periods (SPEC §11) -------------------------------------------

    @abc.abstractmethod
    async def write_archive(self, period: ArchivedPeriod, rows: Sequence[ArchiveValues]
                            ) -> None:
        """Record the period (its `complete` as given) and insert its rows, ignoring
        those whose (board, period, user) is stored already; one transaction."""

    @abc.abstractmethod
    async def archive_page(self, board: str, period: str, after_rank: int, limit: int
                           ) -> list[ArchiveRow]:
        """The period's standings after position `after_rank` (0: from the top), at most
        `limit` rows in order. Positions are 1, 2, 3 … even where ranks tie."""

    @abc.abstractmethod
    async def archive_user(self, board: str, period: str, user_id: str) -> ArchiveRow | None:
        """The user's row in the period's standings, None when they were not in it."""

    @abc.abstractmethod
    async def periods(self, board: str, before: str | None, limit: int
                      ) -> list[ArchivedPeriod]:
        """The board's archived (complete) periods closed before the period `before`
        (None: all), newest first, at most `limit`, each with its top 3."""


    @abc.abstractmethod
    async def archived_period(self, board: str, period: str) -> ArchivedPeriod | None:
        """The board's period when its archive is complete (without its top), else None."""

    @abc.abstractmethod
    async def unarchived(self) -> list[PeriodClosedRecord]:
        """The `period_closed` records whose period has no complete archive, in seq
        order (the archiver writes them after a crash)."""

    @abc.abstractmethod
    async def exclude_from_archive(self, board: str, period: str, user_id: str) -> bool:
        """Take the user out of the period's archive and close the standings up: the
        rows after theirs move up one position, ranks past their position one rank,
        and the period counts one user less; one transaction. False (nothing changed)
        when the user is not in it, so applying an exclusion again is a no-op."""

    @abc.abstractmethod
    async def exclusions(self) -> list[PeriodExclusionRecord]:
        """Every `period_exclusion` record of the log, in seq order."""

    # -- snapshots (not part of the log: a copy of the state at one seq) ---------------

    @abc.abstractmethod
    async def save_snapshot(self, snapshot: StoredSnapshot, *, keep: int) -> None:
        """Store a snapshot (replacing one of the same seq), then delete all but the
        newest `keep`. Raises `StoreUnavailable`; a snapshot half written is never seen."""

    @abc.abstractmethod
    async def snapshots(self) -> list[SnapshotInfo]:
        """The stored snapshots, newest (highest seq) first."""

    @abc.abstractmethod
    async def read_snapshot(self, seq: int) -> StoredSnapshot | None:
        """One stored snapshot with its body; None when there is none of that seq."""
