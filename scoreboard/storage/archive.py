"""Archives of closed periods (SPEC §11): what the store keeps of a period once its
`period_closed` record is in the log, and the statements both SQL backends run.

`ArchivedPeriod` (in `base`) is a row of `periods` (with its top 3 when read);
`ArchiveRow` a row of `archive`, one per user who stood in the period's final
standings. Rows are inserted or ignored by (board, period, user): writing a chunk
twice (after a crash) changes nothing, so the archiver may always start a period
again from its first row. Each backend inserts a chunk's rows as one JSON array, in a
statement of its own dialect (`sqlite_archive`, `postgres.log`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from typing import NamedTuple, overload

import orjson

from scoreboard.storage import schema
from scoreboard.storage.base import ArchivedPeriod, ArchiveValues
from scoreboard.storage.schema import PERIODS, Dialect

TOP = 3
_ENCODE_STEP = 4_096  # rows encoded between yields to the event loop (about a millisecond)
_ROW = "position, user_id, score, rank"
_PERIOD = ", ".join(PERIODS.column_names)


class ArchiveQueries(NamedTuple):
    upsert_period: str  # a full periods row
    page: str  # (board, period, after_position, limit)
    user: str  # (board, period, user_id)
    periods: str  # (board, before_seq, limit): complete ones, newest first
    closed_seq: str  # (board, period)
    one: str  # (board, period): a complete period
    unarchived: str  # (): period_closed records without a complete archive, in seq order
    exclude: tuple[str, ...]  # (board, period, user_id, position) each: see `exclusion_values`
    exclusions: str  # (): every period_exclusion record, in seq order

    @classmethod
    def of(cls, dialect: Dialect) -> ArchiveQueries:
        p = dialect.params
        values = ", ".join(p(len(PERIODS.columns)))
        b, per, after, limit = p(4)
        return cls(
            # A complete period stays as it is: a late chunk from a writer that lost
            # its lock and does not know it yet never marks it incomplete again, nor
            # undoes an exclusion's count.
            upsert_period=schema.insert(PERIODS, f"VALUES ({values})", upsert=True,
                                        unless="complete"),
            page=f"SELECT {_ROW} FROM archive WHERE board = {b} AND period = {per}"
                 f" AND position > {after} ORDER BY position LIMIT {limit}",
            user=f"SELECT {_ROW} FROM archive WHERE board = {b} AND period = {per}"
                 f" AND user_id = {after}",
            periods=f"SELECT {_PERIOD} FROM periods WHERE board = {b} AND complete"
                    f" AND closed_seq < {per} ORDER BY closed_seq DESC LIMIT {after}",
            closed_seq=f"SELECT closed_seq FROM periods WHERE board = {b} AND period = {per}",
            one=f"SELECT {_PERIOD} FROM periods WHERE board = {b} AND period = {per}"
                " AND complete",
            unarchived=f"{schema.SELECT_RECORDS} WHERE kind = 'period_closed' AND NOT EXISTS"
                       " (SELECT 1 FROM periods WHERE periods.board = action_log.board"
                       " AND periods.closed_seq = action_log.seq AND periods.complete)"
                       " ORDER BY seq",
            exclude=(
                f"DELETE FROM archive WHERE board = {b} AND period = {per}"
                f" AND user_id = {after}",
                # Two steps through negative positions: the unique index on positions
                # holds after each row, whatever order the rows are updated in. A rank
                # past the removed position moves up by one under either rule: ordinal
                # ranks are positions, and a competition tie group after it starts one
                # place earlier; a group that started at or before it keeps its rank.
                f"UPDATE archive SET position = -position, rank = CASE WHEN rank > {b}"
                f" THEN rank - 1 ELSE rank END WHERE board = {per} AND period = {after}"
                f" AND position > {limit}",
                f"UPDATE archive SET position = -position - 1 WHERE board = {b}"
                f" AND period = {per} AND position < 0",
                f"UPDATE periods SET total_users = total_users - 1 WHERE board = {b}"
                f" AND period = {per}",
            ),
            exclusions=f"{schema.SELECT_RECORDS} WHERE kind = 'period_exclusion' ORDER BY seq",
        )


def period_values(p: ArchivedPeriod) -> tuple[object, ...]:
    return (p.board, p.period, p.starts_at, p.ends_at, p.total_users, p.closed_seq,
            p.complete)


def exclusion_values(board: str, period: str, user_id: str, position: int
                     ) -> tuple[tuple[object, ...], ...]:
    """The parameters of each statement of `ArchiveQueries.exclude`, in order, for
    taking the user at `position` out of the period."""
    return ((board, period, user_id), (position, board, period, position), (board, period),
            (board, period))


class EncodedRows(Sequence[ArchiveValues]):
    """A chunk of rows held as their JSON array only (`rows_json`'s text): the archiver
    encodes each slice of a closed ranking as it builds it and keeps no tuples, so a
    chunk in flight weighs its text (about 40 bytes a row) instead of its tuples and
    numbers (about 140). Read back as rows (decoded on demand) by a store that keeps
    Python values."""

    __slots__ = ("_count", "text")

    def __init__(self, text: str, count: int) -> None:
        self.text = text
        self._count = count

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[ArchiveValues]:
        return (tuple(r) for r in orjson.loads(self.text))  # type: ignore[misc]

    @overload
    def __getitem__(self, i: int) -> ArchiveValues: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[ArchiveValues]: ...
    def __getitem__(self, i: int | slice) -> ArchiveValues | Sequence[ArchiveValues]:
        return list(self)[i]


async def rows_json(rows: Sequence[ArchiveValues]) -> str:
    """The rows as one JSON array of [position, user_id, score, rank], encoded on the
    event loop a few thousand rows at a time with a yield between: a thread encoding
    them would hold the interpreter lock that every commit's round trips need."""
    if isinstance(rows, EncodedRows):
        return rows.text
    parts: list[bytes] = []
    for start in range(0, len(rows), _ENCODE_STEP):
        if start:
            await asyncio.sleep(0)
        # default: an ArchiveRow (orjson takes plain tuples only)
        parts.append(orjson.dumps(rows[start:start + _ENCODE_STEP], default=tuple)[1:-1])
    return f"[{b','.join(parts).decode()}]"
