"""`SqliteLog`: the action log in one SQLite file, the embedded default.

Durability: WAL with `synchronous=FULL`, so a commit is on disk before `append`
returns. One connection writes (serialised by a lock, one `BEGIN IMMEDIATE`
transaction per batch), on a thread of its own that runs each transaction whole: one
trip from the event loop per batch (`sqlite_thread`). A second, read-only connection
serves reads so they never see a transaction in progress and do not queue behind it.
A second process pointed at the same file is refused by an exclusive `flock` on
`<db>.lock`.

Closed periods' archives live in a file of their own beside the database
(`sqlite_archive`), which the read connection attaches: writing a million-row
archive never holds the log's write lock.

Scores, names and the audit trail are nobody else's business: a folder this log creates
is 0700, and the database, the archive, their -wal and -shm files and the lock file are
0600 (SQLite gives -wal and -shm the database's mode; files from older versions are
tightened).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import sqlite3
from collections.abc import AsyncGenerator, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
import orjson

from scoreboard.core.records import (
    CommitBatch,
    LogRecord,
    PeriodClosedRecord,
    PeriodExclusionRecord,
    SnapshotSink,
)
from scoreboard.storage import schema
from scoreboard.storage.archive import TOP, ArchiveQueries
from scoreboard.storage.base import (
    ActionLog,
    ArchivedPeriod,
    ArchiveRow,
    ArchiveValues,
    SnapshotInfo,
    StoredSnapshot,
    StoreUnavailable,
    WriterLockHeld,
)
from scoreboard.storage.bulk import gc_paused, return_free_memory
from scoreboard.storage.rows import (
    INT64_MAX,
    INT64_MIN,
    PreparedBatch,
    already_committed,
    last_closes,
    prepare,
    raise_conflicts,
    records_from_rows,
    unique,
)
from scoreboard.storage.sqlite_archive import ATTACHED, ArchiveFile, archive_path, stand_in
from scoreboard.storage.sqlite_thread import ThreadedConnection


def _insert(table: schema.Table, *, upsert: bool = False) -> str:
    values = ", ".join(schema.SQLITE.params(len(table.columns)))
    return schema.insert(table, f"VALUES ({values})", upsert=upsert)


_INSERT_RECORD = _insert(schema.ACTION_LOG)
_UPSERT_SCORE = _insert(schema.BOARD_SCORES, upsert=True)
_UPSERT_USER = _insert(schema.USERS, upsert=True)
_UPSERT_SNAPSHOT = _insert(schema.SNAPSHOTS, upsert=True)
_READ_SNAPSHOT = f"SELECT {schema.SNAPSHOTS.column_list} FROM snapshots WHERE seq = ?"
# Keys travel as one JSON array so any number fits in one statement.
_FIND_ACTIONS = f"""{schema.SELECT_RECORDS} WHERE client_action_id IS NOT NULL
    AND (user_id, client_action_id) IN
        (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?))
    ORDER BY seq"""
_FIND_SEQS = f"""{schema.SELECT_RECORDS} WHERE seq IN (SELECT value FROM json_each(?))
    ORDER BY seq"""
_FIND_JTIS = """SELECT proof_jti FROM action_log
    WHERE proof_jti IN (SELECT value FROM json_each(?))"""
# Written as a union of two index searches: SQLite plans the plain OR as a full scan.
_LOAD_RECENT = f"""{schema.SELECT_RECORDS} WHERE seq IN (
        SELECT seq FROM action_log WHERE at >= ?
        UNION SELECT seq FROM action_log WHERE proof_exp >= ?)
    ORDER BY seq"""
_RECORDS = schema.RecordQueries.of(schema.SQLITE)
_ARCHIVE = ArchiveQueries.of(schema.SQLITE)
C = TypeVar("C", aiosqlite.Connection, ThreadedConnection)
PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
_SIDE_FILES = ("", "-wal", "-shm", ".lock")  # suffixes of the files beside the database


def _make_private(db: Path) -> None:
    """Create the database file owner-only (SQLite then makes -wal and -shm alike) and
    tighten any of its files that an older version left readable by others."""
    os.close(os.open(db, os.O_RDWR | os.O_CREAT, PRIVATE_FILE))
    for suffix in _SIDE_FILES:
        path = Path(f"{db}{suffix}")
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_mode & 0o077:
                path.chmod(PRIVATE_FILE)


class _LockFile:
    """An exclusive `flock` on a file beside the database, held while open.

    The kernel drops the lock when the process dies, so a crash never leaves a stale
    lock. The file is never deleted: unlinking would let two processes lock two
    different files under the same name.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise WriterLockHeld(
                f"another process (pid {holder}) is already the writer of this database: "
                f"{self.path} is locked; stop it or point this one at another database"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


class SqliteLog(ActionLog):
    def __init__(self, path: Path | str, *, busy_timeout: float = 5.0,
                 read_only: bool = False) -> None:
        self.path = Path(path)
        # read_only: no lock file, no writer, no migration; reads beside a running writer
        self.read_only = read_only
        self._busy_timeout_ms = int(busy_timeout * 1000)
        self._lock = _LockFile(Path(f"{self.path}.lock"))
        self.archive_path = archive_path(self.path)
        self._archive = ArchiveFile(self.archive_path, busy_timeout_ms=self._busy_timeout_ms)
        self._writer: ThreadedConnection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._write_lock = asyncio.Lock()
        self._snapshot_lock = asyncio.Lock()  # one read transaction at a time on the reader

    async def open(self) -> None:
        if self._writer is not None or self._reader is not None:
            return
        if self.read_only:
            await self._open_read_only()
            return
        try:
            self.path.parent.mkdir(PRIVATE_DIR, parents=True, exist_ok=True)
            self._lock.acquire()
            _make_private(self.path)
            _make_private(self.archive_path)
        except OSError as exc:
            raise StoreUnavailable(f"cannot open {self.path}: {exc}") from exc
        try:
            writer = ThreadedConnection(self.path, name="sqlite-log",
                                        busy_timeout_ms=self._busy_timeout_ms)
            await writer.open(self._setup_writer)
            self._writer = writer
            await self._archive.open()
            self._reader = await self._connect()
            await self._reader.execute(f"ATTACH DATABASE ? AS {ATTACHED}",
                                       (str(self.archive_path),))
            await self._pragma(self._reader, "query_only = ON")
        except BaseException as exc:
            await self._close_connections()
            self._lock.release()
            if isinstance(exc, sqlite3.Error | OSError):
                raise StoreUnavailable(f"cannot open {self.path}: {exc}") from exc
            raise

    async def close(self) -> None:
        async with self._write_lock:  # let an append in flight finish first
            await self._close_connections()
            self._lock.release()

    async def append(self, batch: CommitBatch) -> None:
        prepared = prepare(batch)
        async with self._write_lock:
            writer = self._require(self._writer)
            try:
                await writer.transaction(lambda conn: _write(conn, prepared))
            except sqlite3.IntegrityError as exc:
                await self._explain_conflict(writer, prepared, exc)
            except (sqlite3.Error, OSError) as exc:
                raise StoreUnavailable(f"append failed: {exc}; nothing was written") from exc

    async def last_seq(self) -> int:
        rows = await self._read(schema.LAST_SEQ)
        return int(rows[0][0])

    async def load(self, since: float, into: SnapshotSink, *, chunk: int = 10_000) -> None:
        if chunk < 1:
            raise ValueError("chunk must be >= 1")
        conn = self._require(self._reader)
        async with self._snapshot_lock:
            try:
                # One read transaction: every chunk comes from the same commit.
                await conn.execute("BEGIN")
                try:
                    with gc_paused():
                        last = await conn.execute_fetchall(schema.LAST_SEQ)
                        closes = await conn.execute_fetchall(schema.LAST_CLOSES)
                        last_at = await conn.execute_fetchall(schema.LAST_AT)
                        into.periods(last_closes(closes), float(next(iter(last_at))[0]))
                        await _stream(conn, schema.SELECT_SCORES, (), chunk, into.scores)
                        await _stream(conn, schema.SELECT_USERS, (), chunk, into.users)
                        await _stream(
                            conn, _LOAD_RECENT, (since, since), chunk,
                            lambda rows: into.recent(records_from_rows(rows)),
                        )
                finally:
                    await conn.execute("COMMIT")
            except (sqlite3.Error, OSError, ValueError) as exc:
                raise StoreUnavailable(f"load failed: {exc}") from exc
        into.end(int(next(iter(last))[0]))
        return_free_memory()

    async def find_actions(self, keys: Sequence[tuple[str, str]]) -> list[LogRecord]:
        if not keys:
            return []
        return records_from_rows(await self._read(_FIND_ACTIONS, (_json_list(unique(keys)),)))

    async def history(self, user_id: str, *, before_seq: int | None, limit: int) -> list[LogRecord]:
        if limit <= 0:  # SQLite reads a negative LIMIT as "no limit"
            return []
        if before_seq is None:
            rows = await self._read(_RECORDS.history, (user_id, limit))
        else:
            rows = await self._read(_RECORDS.history_before, (user_id, before_seq, limit))
        return records_from_rows(rows)

    async def scan(
        self, *, after: int | None = None, chunk: int = 10_000
    ) -> AsyncGenerator[list[LogRecord], None]:
        if chunk < 1:
            raise ValueError("chunk must be >= 1")
        start = INT64_MIN if after is None else after + 1
        while True:
            records = records_from_rows(await self._read(_RECORDS.scan, (start, chunk)))
            if not records:
                return
            yield records
            start = records[-1].seq + 1

    async def ping(self) -> bool:
        try:
            await self._read("SELECT 1")
        except StoreUnavailable:
            return False
        return True

    async def save_snapshot(self, snapshot: StoredSnapshot, *, keep: int) -> None:
        if keep < 1:
            raise ValueError("keep must be >= 1")
        row = (snapshot.seq, snapshot.created_at, snapshot.format, snapshot.checksum,
               snapshot.body)
        # On the writer's connection: SQLite has one writer at a time anyway, and an
        # append queued here waits exactly as long as this takes, no busy polling.
        def work(conn: sqlite3.Connection) -> None:
            conn.execute(_UPSERT_SNAPSHOT, row)
            conn.execute(schema.PRUNE_SNAPSHOTS.format(keep=int(keep)))

        async with self._write_lock:
            try:
                await self._require(self._writer).transaction(work)
            except (sqlite3.Error, OSError) as exc:
                raise StoreUnavailable(f"saving a snapshot failed: {exc}") from exc

    async def snapshots(self) -> list[SnapshotInfo]:
        return [SnapshotInfo(*row) for row in await self._read(schema.LIST_SNAPSHOTS)]

    async def read_snapshot(self, seq: int) -> StoredSnapshot | None:
        rows = await self._read(_READ_SNAPSHOT, (seq,))
        return StoredSnapshot(*rows[0]) if rows else None

    async def write_archive(self, period: ArchivedPeriod, rows: Sequence[ArchiveValues]
                            ) -> None:
        await self._archive.write(period, rows)

    async def archive_page(self, board: str, period: str, after_rank: int, limit: int
                           ) -> list[ArchiveRow]:
        if limit <= 0:
            return []
        rows = await self._read(_ARCHIVE.page, (board, period, after_rank, limit))
        return [ArchiveRow(*r) for r in rows]

    async def archive_user(self, board: str, period: str, user_id: str) -> ArchiveRow | None:
        rows = await self._read(_ARCHIVE.user, (board, period, user_id))
        return ArchiveRow(*rows[0]) if rows else None

    async def periods(self, board: str, before: str | None, limit: int
                      ) -> list[ArchivedPeriod]:
        if limit <= 0:
            return []
        until = INT64_MAX
        if before is not None:
            seq = await self._read(_ARCHIVE.closed_seq, (board, before))
            until = int(seq[0][0]) if seq else 0
        found = [ArchivedPeriod(r[0], r[1], r[2], r[3], r[4], r[5], bool(r[6]))
                 for r in await self._read(_ARCHIVE.periods, (board, until, limit))]
        return [p._replace(top=tuple(await self.archive_page(board, p.period, 0, TOP)))
                for p in found]

    async def archived_period(self, board: str, period: str) -> ArchivedPeriod | None:
        rows = await self._read(_ARCHIVE.one, (board, period))
        if not rows:
            return None
        r = rows[0]
        return ArchivedPeriod(r[0], r[1], r[2], r[3], r[4], r[5], bool(r[6]))

    async def unarchived(self) -> list[PeriodClosedRecord]:
        return [r for r in records_from_rows(await self._read(_ARCHIVE.unarchived))
                if isinstance(r, PeriodClosedRecord)]

    async def exclude_from_archive(self, board: str, period: str, user_id: str) -> bool:
        return await self._archive.exclude(board, period, user_id)

    async def exclusions(self) -> list[PeriodExclusionRecord]:
        return [r for r in records_from_rows(await self._read(_ARCHIVE.exclusions))
                if isinstance(r, PeriodExclusionRecord)]

    # -- internals --------------------------------------------------------------------

    async def _open_read_only(self) -> None:
        if not self.path.is_file():
            raise StoreUnavailable(f"cannot open {self.path}: no such database file")
        try:
            self._reader = await self._connect(f"{self.path.resolve().as_uri()}?mode=ro")
            if self.archive_path.is_file():
                await self._reader.execute(f"ATTACH DATABASE ? AS {ATTACHED}",
                                           (f"{self.archive_path.resolve().as_uri()}?mode=ro",))
            else:
                for statement in stand_in():
                    await self._reader.execute(statement)
        except (sqlite3.Error, OSError) as exc:
            await self._close_connections()
            raise StoreUnavailable(f"cannot open {self.path} read-only: {exc}") from exc

    async def _connect(self, uri: str | None = None) -> aiosqlite.Connection:
        # isolation_level=None: the sqlite3 module must not open transactions on its
        # own; every transaction here is explicit.
        if uri is None:
            conn = await aiosqlite.connect(self.path, isolation_level=None)
        else:
            conn = await aiosqlite.connect(uri, isolation_level=None, uri=True)
        try:
            await self._pragma(conn, f"busy_timeout = {self._busy_timeout_ms}")
        except BaseException:
            await conn.close()
            raise
        return conn

    @staticmethod
    async def _pragma(conn: aiosqlite.Connection, pragma: str) -> None:
        await conn.execute_fetchall(f"PRAGMA {pragma}")

    def _setup_writer(self, conn: sqlite3.Connection) -> None:
        """On the writer's thread, once: WAL, full sync, the schema brought up to date."""
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreUnavailable(f"journal_mode = WAL: SQLite kept journal_mode={mode}")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY)"
            )
            current = int(conn.execute(
                "SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0])
            for version, statements in schema.upgrades(schema.SQLITE, current, str(self.path)):
                for statement in statements:
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    async def _explain_conflict(
        self, writer: ThreadedConnection, prepared: PreparedBatch, exc: sqlite3.IntegrityError
    ) -> None:
        """After a unique violation (rolled back): return if the batch was already
        committed, else raise the matching error."""
        def look(conn: sqlite3.Connection) -> tuple[list[Any], list[Any], list[Any]]:
            def rows(sql: str, values: Sequence[object]) -> list[Any]:
                return conn.execute(sql, (_json_list(values),)).fetchall()

            return (rows(_FIND_SEQS, prepared.seqs),
                    rows(_FIND_ACTIONS, unique(prepared.action_keys)),
                    rows(_FIND_JTIS, unique(prepared.proof_jtis)))

        try:
            found, taken, jtis = await writer.call(look)
            if already_committed(prepared, records_from_rows(found)):
                return
        except (sqlite3.Error, OSError) as lookup_exc:
            raise StoreUnavailable(f"append failed: {exc}; nothing was written") from lookup_exc
        raise_conflicts(prepared, {(r[3], r[6]) for r in taken}, {r[0] for r in jtis})
        raise StoreUnavailable(f"append refused: {exc}; nothing was written") from exc

    async def _read(self, sql: str, params: Sequence[object] = ()) -> list[sqlite3.Row]:
        conn = self._require(self._reader)
        try:
            return list(await conn.execute_fetchall(sql, params))
        except (sqlite3.Error, OSError, ValueError) as exc:
            # ValueError: aiosqlite's "Connection closed" when close() raced this read.
            raise StoreUnavailable(f"read failed: {exc}") from exc

    def _require(self, conn: C | None) -> C:
        if conn is None:
            raise StoreUnavailable(f"SQLite log {self.path} is not open")
        return conn

    async def _close_connections(self) -> None:
        for conn in (self._reader, self._writer):
            if conn is not None:
                with contextlib.suppress(sqlite3.Error, ValueError):
                    await conn.close()
        self._reader, self._writer = None, None
        with contextlib.suppress(sqlite3.Error):
            await self._archive.close()


async def _stream(
    conn: aiosqlite.Connection,
    sql: str,
    params: Sequence[object],
    chunk: int,
    deliver: Callable[[list[sqlite3.Row]], object],
) -> None:
    """Hand the rows of a query over `chunk` at a time."""
    cursor = await conn.execute(sql, params)
    try:
        while rows := list(await cursor.fetchmany(chunk)):
            deliver(rows)
    finally:
        await cursor.close()


def _write(conn: sqlite3.Connection, prepared: PreparedBatch) -> None:
    """A batch's rows, inside the writer's transaction (on its thread)."""
    conn.executemany(_INSERT_RECORD, prepared.records)
    if prepared.scores:
        conn.executemany(_UPSERT_SCORE, prepared.scores)
    if prepared.users:
        conn.executemany(_UPSERT_USER, prepared.users)


def _json_list(values: Sequence[object]) -> str:
    return orjson.dumps(list(values)).decode()
