"""`MemoryLog`: the action log in dicts and lists, a test double for the writer.

It implements the narrow `ActionLog` interface with the same semantics as the SQL
backends (it passes the same contract suite): atomic batches, `DuplicateAction` and
`DuplicateProof` with nothing written, the same value checks, fresh copies on every
read. Its data outlives `close()`: reopening the same instance finds everything, the
way a database outlives its connections. `fail_next()` makes appends fail on demand.
"""

from __future__ import annotations

import bisect
from collections.abc import AsyncGenerator, Sequence
from itertools import groupby
from operator import itemgetter
from typing import Any

from scoreboard.core.records import (
    CommitBatch,
    LogRecord,
    PeriodClosedRecord,
    PeriodExclusionRecord,
    SnapshotSink,
)
from scoreboard.storage.archive import TOP
from scoreboard.storage.base import (
    ActionLog,
    ArchivedPeriod,
    ArchiveRow,
    ArchiveValues,
    SnapshotInfo,
    StoredSnapshot,
    StoreUnavailable,
)
from scoreboard.storage.rows import (
    INT64_MAX,
    PreparedBatch,
    RecordRow,
    ScoreValues,
    UserValues,
    already_committed,
    chunked,
    last_closes,
    prepare,
    raise_conflicts,
    record_from_row,
    records_from_rows,
    unique,
)


class MemoryLog(ActionLog):
    def __init__(self) -> None:
        self._is_open = False
        self._rows: dict[int, RecordRow] = {}
        self._seqs: list[int] = []  # sorted
        self._seq_by_key: dict[tuple[str, str], int] = {}
        self._seq_by_jti: dict[str, int] = {}
        # The checked rows as `prepare` made them, in the field order of `ScoreRow` and
        # `UserRow` (what recovery reads): plain tuples of plain values, which the
        # garbage collector stops tracking; scores by board, then user (no key tuple
        # per row).
        self._scores: dict[str, dict[str, ScoreValues]] = {}
        self._users: dict[str, UserValues] = {}
        self._periods: dict[tuple[str, str], ArchivedPeriod] = {}
        self._archive: dict[tuple[str, str], dict[str, ArchiveRow]] = {}
        self._snapshots: dict[int, StoredSnapshot] = {}
        self._failures_left = 0
        self._fail_after_commit = False

    # -- test hooks -------------------------------------------------------------------

    def fail_next(self, n: int = 1, *, after_commit: bool = False) -> None:
        """Make the next `n` appends raise `StoreUnavailable`.

        By default nothing is written, like a refused transaction. With
        `after_commit=True` the batch is written and then the error is raised, like a
        connection lost during COMMIT: the caller cannot tell, and a retry of the same
        batch must succeed without writing it twice.
        """
        if n < 0:
            raise ValueError("n must be >= 0")
        self._failures_left = n
        self._fail_after_commit = after_commit

    # -- ActionLog --------------------------------------------------------------------

    async def open(self) -> None:
        self._is_open = True

    async def close(self) -> None:
        self._is_open = False

    async def append(self, batch: CommitBatch) -> None:
        self._require_open()
        prepared = prepare(batch)
        if self._failures_left and not self._fail_after_commit:
            self._failures_left -= 1
            raise StoreUnavailable("memory log: injected failure; nothing was written")
        if any(seq in self._rows for seq in prepared.seqs):
            # Same order of checks as the SQL backends after a unique violation.
            if already_committed(prepared, self._stored(prepared.seqs)):
                return
        raise_conflicts(prepared, self._seq_by_key, self._seq_by_jti)
        if len(set(prepared.seqs)) != len(prepared.seqs) or any(
            seq in self._rows for seq in prepared.seqs
        ):
            raise StoreUnavailable("memory log: a seq of the batch is already in the log")
        self._write(prepared)
        if self._failures_left:
            self._failures_left -= 1
            raise StoreUnavailable("memory log: injected failure after commit")

    async def last_seq(self) -> int:
        self._require_open()
        return self._seqs[-1] if self._seqs else 0

    async def load(self, since: float, into: SnapshotSink, *, chunk: int = 10_000) -> None:
        self._require_open()
        # No await from here to the end: nothing can change in between, so every chunk
        # comes from the same state.
        logged = (self._rows[seq] for seq in self._seqs)
        closes: dict[Any, Any] = {}  # the last close of each board, every admin record
        for row in logged:
            if row[4] == "period_closed":
                closes[row[2]] = row
            elif row[4] in ("board_defined", "standing_removed"):
                closes[row[0]] = row
        into.periods(last_closes(sorted(closes.values())),
                     self._rows[self._seqs[-1]][1] if self._seqs else 0.0)
        for scores in chunked((row for board in self._scores.values()
                               for row in board.values()), chunk):
            into.scores(scores)
        for users in chunked(self._users.values(), chunk):
            into.users(users)
        recent = (
            row for row in (self._rows[seq] for seq in self._seqs)
            if row[1] >= since or (row[15] is not None and row[15] >= since)
        )
        for rows in chunked(recent, chunk):
            into.recent(records_from_rows(rows))
        into.end(self._seqs[-1] if self._seqs else 0)

    async def find_actions(self, keys: Sequence[tuple[str, str]]) -> list[LogRecord]:
        self._require_open()
        seqs = sorted({self._seq_by_key[k] for k in unique(keys) if k in self._seq_by_key})
        return self._stored(seqs)

    async def history(self, user_id: str, *, before_seq: int | None, limit: int) -> list[LogRecord]:
        self._require_open()
        end = len(self._seqs) if before_seq is None else bisect.bisect_left(self._seqs, before_seq)
        found: list[LogRecord] = []
        for i in range(end - 1, -1, -1):
            if len(found) >= limit:
                break
            row = self._rows[self._seqs[i]]
            if row[3] == user_id:
                found.append(record_from_row(row))
        return found

    async def scan(
        self, *, after: int | None = None, chunk: int = 10_000
    ) -> AsyncGenerator[list[LogRecord], None]:
        if chunk < 1:
            raise ValueError("chunk must be >= 1")
        self._require_open()
        while True:
            # Re-find the position each time: appends may happen between chunks.
            start = 0 if after is None else bisect.bisect_right(self._seqs, after)
            seqs = self._seqs[start : start + chunk]
            if not seqs:
                return
            after = seqs[-1]
            yield self._stored(seqs)
            self._require_open()

    async def ping(self) -> bool:
        return self._is_open

    async def write_archive(self, period: ArchivedPeriod, rows: Sequence[ArchiveValues]
                            ) -> None:
        self._require_open()
        key = (period.board, period.period)
        stored = self._archive.setdefault(key, {})
        for row in rows:
            stored.setdefault(row[1], ArchiveRow(*row))
        held = self._periods.get(key)
        if held is None or not held.complete:  # a complete period stays as it is
            self._periods[key] = period._replace(top=())

    async def archive_page(self, board: str, period: str, after_rank: int, limit: int
                           ) -> list[ArchiveRow]:
        self._require_open()
        rows = sorted(self._archive.get((board, period), {}).values())
        return [r for r in rows if r.position > after_rank][:max(limit, 0)]

    async def archive_user(self, board: str, period: str, user_id: str) -> ArchiveRow | None:
        self._require_open()
        return self._archive.get((board, period), {}).get(user_id)

    async def periods(self, board: str, before: str | None, limit: int
                      ) -> list[ArchivedPeriod]:
        self._require_open()
        until = INT64_MAX if before is None else (
            p.closed_seq if (p := self._periods.get((board, before))) else 0)
        found = sorted((p for p in self._periods.values()
                        if p.board == board and p.complete and p.closed_seq < until),
                       key=lambda p: -p.closed_seq)[:max(limit, 0)]
        return [p._replace(top=tuple(await self.archive_page(board, p.period, 0, TOP)))
                for p in found]

    async def archived_period(self, board: str, period: str) -> ArchivedPeriod | None:
        self._require_open()
        found = self._periods.get((board, period))
        return found if found is not None and found.complete else None

    async def unarchived(self) -> list[PeriodClosedRecord]:
        self._require_open()
        done = {(p.board, p.closed_seq) for p in self._periods.values() if p.complete}
        return [r for r in last_closes(self._rows[seq] for seq in self._seqs
                                       if self._rows[seq][4] == "period_closed")
                if isinstance(r, PeriodClosedRecord) and (r.board, r.seq) not in done]

    async def exclude_from_archive(self, board: str, period: str, user_id: str) -> bool:
        self._require_open()
        rows = self._archive.get((board, period), {})
        gone = rows.pop(user_id, None)
        if gone is None:
            return False
        for user, row in rows.items():  # as `ArchiveQueries.exclude` does
            if row.position > gone.position:
                rows[user] = row._replace(position=row.position - 1, rank=row.rank - 1
                                          if row.rank > gone.position else row.rank)
        key = (board, period)
        if key in self._periods:
            self._periods[key] = self._periods[key]._replace(
                total_users=self._periods[key].total_users - 1)
        return True

    async def exclusions(self) -> list[PeriodExclusionRecord]:
        self._require_open()
        return [r for r in records_from_rows(self._rows[seq] for seq in self._seqs
                                             if self._rows[seq][4] == "period_exclusion")
                if isinstance(r, PeriodExclusionRecord)]

    async def save_snapshot(self, snapshot: StoredSnapshot, *, keep: int) -> None:
        self._require_open()
        if keep < 1:
            raise ValueError("keep must be >= 1")
        self._snapshots[snapshot.seq] = snapshot
        for seq in sorted(self._snapshots, reverse=True)[keep:]:
            del self._snapshots[seq]

    async def snapshots(self) -> list[SnapshotInfo]:
        self._require_open()
        return [SnapshotInfo(s.seq, s.created_at, s.format, s.checksum, len(s.body))
                for s in sorted(self._snapshots.values(), key=lambda s: -s.seq)]

    async def read_snapshot(self, seq: int) -> StoredSnapshot | None:
        self._require_open()
        return self._snapshots.get(seq)

    # -- internals --------------------------------------------------------------------

    def _require_open(self) -> None:
        if not self._is_open:
            raise StoreUnavailable("memory log is not open")

    def _stored(self, seqs: Sequence[int]) -> list[LogRecord]:
        return records_from_rows(self._rows[seq] for seq in seqs if seq in self._rows)

    def _write(self, prepared: PreparedBatch) -> None:
        # Every check has passed: from here nothing can fail, so the batch is atomic.
        for row in prepared.records:
            seq = row[0]
            self._rows[seq] = row
            if self._seqs and seq < self._seqs[-1]:
                bisect.insort(self._seqs, seq)
            else:
                self._seqs.append(seq)
            if row[6] is not None:
                self._seq_by_key[(row[3], row[6])] = seq
            if row[14] is not None:
                self._seq_by_jti[row[14]] = seq
        scores = self._scores
        # A run of rows per board (as batches carry them): one dict update each.
        for board, run in groupby(prepared.scores, _BOARD):
            rows = list(run)
            held = scores.get(board)
            if held is None:
                held = scores[board] = {}
            held.update(zip(map(_USER, rows), rows, strict=True))
        users = self._users
        for user in prepared.users:
            users[user[0]] = user


_BOARD = itemgetter(0)  # of a score row (board, user, score, reached seq)
_USER = itemgetter(1)
