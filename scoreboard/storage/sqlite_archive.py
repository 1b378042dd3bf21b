"""The archive of closed periods in a SQLite file of its own, beside the log's
(`scoreboard-archive.db` beside `scoreboard.db`).

SQLite has one write lock per file. With the archive in the log's file, every archive
transaction held the lock the writer's group commits wait for, and the checkpoints of
the archive's pages ran inside it: the writer paused while a million-row period was
archived. In a file of its own the archive has its own lock, its own WAL and its own
checkpoints, and a transaction can be as large as suits it.

The log's read connection attaches this file (`archive`), so reads and `unarchived`
(which joins the log with `periods`) name the tables as usual: since schema 6 the log's
file has none of its own.

Durable enough: `synchronous=NORMAL` in WAL mode may lose the last transactions when
the machine stops, never the file's integrity. The archive is a function of the log:
on start the archiver rebuilds every period whose archive is not complete and applies
every exclusion again, and a file that is lost or deleted is rebuilt whole.

The event loop never waits for it: each call is one trip to a thread of its own that
runs the whole transaction (`sqlite_thread`). Rows travel as one JSON array
(`rows_json`, encoded on the loop in slices) that SQLite unpacks itself (`json_each`),
so the thread binds three parameters, not four per row, and runs the insert with the
interpreter lock released rather than taking it back row by row: the writer's commits,
whose trip needs that lock, do not queue for it.

A period's user index takes its rows in random order, so a transaction touches most of
its pages, and each one is written to the WAL again per transaction: few large chunks
write far less than many small ones (1M users, the file alone with a 64 MiB cache: 34 s
in 10,000-row chunks, 14 s in 50,000-row chunks). Each chunk is inserted in the user
index's order (`ORDER BY` the user), so the index's pages are visited once each, in
order, and a small page cache (`CACHE_KIB`, handed back once a period is complete)
suffices: in `bench.boards` (1M users) inserted as they came, an 8 MiB cache took the
RSS down 29 MB from 32 MiB but doubled the widest gap between the log's commits (the
log's fsync waiting behind the archive's reads and writes); in order, 8 MiB is 25 MB
lighter than 32 MiB as it came, the gap no wider in the runs measured.

Traced later (1M users: each log commit's phases on its thread, its fdatasync, the
kernel's dirty and writeback figures), most of the widest gaps were not the log's fsync
but its thread waiting for the interpreter lock while the archiver built rows (see
`writer.archiver`, `PAUSE`). What the disk adds: a chunk's commit here ends with a
checkpoint, an fsync of the chunk's WAL (6-43 MB, growing with the user index) and then
the same pages written into this file and synced; a log COMMIT that meets it took
18-24 ms, fdatasync included, or 40-93 ms when the disk was slower. An fdatasync of this
file and its WAL every 10 ms from a thread of their own while a chunk was written, to
keep that backlog small, did not shorten it (longest log COMMIT 16-24 ms against
22-24 ms, 4 runs each).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from scoreboard.storage import schema
from scoreboard.storage.archive import (
    ArchiveQueries,
    exclusion_values,
    period_values,
    rows_json,
)
from scoreboard.storage.base import ArchivedPeriod, ArchiveValues, StoreUnavailable
from scoreboard.storage.sqlite_thread import ThreadedConnection

T = TypeVar("T")
VERSION = 1  # of the archive file's own schema (`PRAGMA user_version`)
ATTACHED = "archive"  # the name the log's read connection gives it
CACHE_KIB = 8_192  # the writing connection's page cache at most (see above)
_QUERIES = ArchiveQueries.of(schema.SQLITE)
_INSERT_ROWS = (
    f"INSERT INTO archive ({schema.ARCHIVE.column_list})"
    " SELECT ?, ?, value ->> 0, value ->> 1, value ->> 2, value ->> 3 FROM json_each(?)"
    " WHERE true ORDER BY value ->> 1"  # WHERE: the parser's cue that no join follows
    " ON CONFLICT DO NOTHING"
)


def archive_path(log: Path) -> Path:
    """The archive's file beside the log's: `scoreboard.db` → `scoreboard-archive.db`."""
    return log.with_name(f"{log.stem}-archive{log.suffix}")


def stand_in() -> tuple[str, ...]:
    """Attach an empty archive in memory: for a read-only opening of a log whose
    archive file is missing (nothing archived yet, and nothing may be created)."""
    return (f"ATTACH DATABASE ':memory:' AS {ATTACHED}",
            *schema.archive_schema(schema.SQLITE, within=ATTACHED))


class ArchiveFile:
    """The archive file's writing connection, on a thread of its own."""

    def __init__(self, path: Path, *, busy_timeout_ms: int) -> None:
        self.path = path
        self._conn = ThreadedConnection(path, name="archive", busy_timeout_ms=busy_timeout_ms)

    async def open(self) -> None:
        await self._conn.open(self._setup)

    async def close(self) -> None:
        await self._conn.close()

    async def write(self, period: ArchivedPeriod, rows: Sequence[ArchiveValues]) -> None:
        body = await rows_json(rows)  # text: SQLite reads a BLOB as JSONB

        def work(conn: sqlite3.Connection) -> None:
            conn.execute(_INSERT_ROWS, (period.board, period.period, body))
            conn.execute(_QUERIES.upsert_period, period_values(period))

        await self._transaction("writing an archive", work)
        if period.complete:
            with contextlib.suppress(StoreUnavailable, sqlite3.Error):
                await self._conn.call(lambda conn: conn.execute("PRAGMA shrink_memory"))

    async def exclude(self, board: str, period: str, user_id: str) -> bool:
        def work(conn: sqlite3.Connection) -> bool:
            row = conn.execute(_QUERIES.user, (board, period, user_id)).fetchone()
            if row is None:
                return False
            for sql, args in zip(_QUERIES.exclude,
                                 exclusion_values(board, period, user_id, row[0]), strict=True):
                conn.execute(sql, args)
            return True

        return await self._transaction("excluding a user from an archive", work)

    async def _transaction(self, what: str, work: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return await self._conn.transaction(work)
        except (sqlite3.Error, OSError) as exc:
            raise StoreUnavailable(f"{what} failed: {exc}") from exc

    def _setup(self, conn: sqlite3.Connection) -> None:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreUnavailable(f"{self.path}: SQLite kept journal_mode={mode}")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if version > VERSION:
                raise StoreUnavailable(
                    f"{self.path} has archive version {version}; this code knows up to "
                    f"{VERSION}: upgrade the program")
            if version < VERSION:
                for statement in schema.archive_schema(schema.SQLITE):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
