"""`PostgresLog`: the action log in PostgreSQL, for production.

Writes go through one dedicated connection that also holds the session-level advisory
lock making this process the only writer. Writing on the lock's own session is the
fence: if that session dies the lock goes with it, and no write can commit until a new
session has taken the lock again, so a process that lost the lock to another writer
can never slip a write in. Reads (history, lookups, scans, recovery) use a small pool.

Each append is a single `INSERT … SELECT FROM unnest(…)` statement with the upserts in
data-modifying CTEs: one round trip, atomic on its own, and measured faster than
`copy_records_to_table` or `executemany` in a transaction for batches of 1 to 500.
Connections set `synchronous_commit=on` explicitly, so a returned append is durable.
Session-level advisory locks need a session: do not put a transaction-pooling
PgBouncer between this and the server.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

import asyncpg

from scoreboard.core.records import CommitBatch, LogRecord, Snapshot
from scoreboard.storage._rows import (
    RECORD_COLUMN_LIST,
    RECORD_COLUMNS,
    PreparedBatch,
    already_committed,
    gc_paused,
    prepare,
    raise_conflicts,
    records_from_rows,
    score_rows,
    unique,
    user_rows,
)
from scoreboard.storage.base import ActionLog, StoreError, StoreUnavailable, WriterLockHeld

# A fixed key, so every scoreboard process pointed at the same database competes for
# the same lock (advisory locks are per database).
WRITER_LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"scoreboard-writer").digest()[:8], "big", signed=True
)
SCHEMA_VERSION = 2

_MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE action_log (
            seq BIGINT PRIMARY KEY,
            at DOUBLE PRECISION NOT NULL,
            board TEXT NOT NULL,
            user_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            action_type TEXT,
            client_action_id TEXT,
            delta BIGINT NOT NULL,
            prev_score BIGINT NOT NULL,
            new_score BIGINT NOT NULL,
            display_name TEXT,
            metadata JSONB,
            actor TEXT,
            reason TEXT,
            proof_jti TEXT,
            proof_exp DOUBLE PRECISION
        )""",
        """CREATE UNIQUE INDEX action_log_action_key ON action_log (user_id, client_action_id)
            WHERE client_action_id IS NOT NULL""",
        """CREATE UNIQUE INDEX action_log_proof_jti ON action_log (proof_jti)
            WHERE proof_jti IS NOT NULL""",
        "CREATE INDEX action_log_user_seq ON action_log (user_id, seq)",
        "CREATE INDEX action_log_at ON action_log (at)",
        # Lets load() find unexpired proofs without scanning the whole log.
        "CREATE INDEX action_log_proof_exp ON action_log (proof_exp) WHERE proof_exp IS NOT NULL",
        """CREATE TABLE board_scores (
            board TEXT NOT NULL,
            user_id TEXT NOT NULL,
            score BIGINT NOT NULL,
            reached_seq BIGINT NOT NULL,
            PRIMARY KEY (board, user_id)
        )""",
        """CREATE TABLE users (
            user_id TEXT PRIMARY KEY,
            display_name TEXT,
            frozen BOOLEAN NOT NULL,
            hidden BOOLEAN NOT NULL
        )""",
    ),
    2: ("ALTER TABLE users ADD COLUMN flag TEXT",),  # UserRow.flag (abuse monitor)
}

_RECORD_TYPES = (
    "bigint", "float8", "text", "text", "text", "text", "text", "bigint",
    "bigint", "bigint", "text", "jsonb", "text", "text", "text", "float8",
)  # fmt: skip
_RECORD_ARRAYS = ", ".join(f"${i}::{t}[]" for i, t in enumerate(_RECORD_TYPES, 1))
_APPEND = f"""WITH
    records AS (
        INSERT INTO action_log ({RECORD_COLUMN_LIST}) SELECT * FROM unnest({_RECORD_ARRAYS})
    ),
    scores AS (
        INSERT INTO board_scores (board, user_id, score, reached_seq)
        SELECT * FROM unnest($17::text[], $18::text[], $19::bigint[], $20::bigint[])
        ON CONFLICT (board, user_id)
        DO UPDATE SET score = excluded.score, reached_seq = excluded.reached_seq
    ),
    users AS (
        INSERT INTO users (user_id, display_name, frozen, hidden, flag)
        SELECT * FROM unnest(
            $21::text[], $22::text[], $23::boolean[], $24::boolean[], $25::text[])
        ON CONFLICT (user_id)
        DO UPDATE SET display_name = excluded.display_name, frozen = excluded.frozen,
            hidden = excluded.hidden, flag = excluded.flag
    )
SELECT 1"""
_SELECT = f"SELECT {RECORD_COLUMN_LIST} FROM action_log"
_FIND_ACTIONS = f"""SELECT {", ".join(f"a.{c}" for c in RECORD_COLUMNS)}
    FROM unnest($1::text[], $2::text[]) AS k (user_id, client_action_id)
    JOIN action_log AS a
        ON a.user_id = k.user_id AND a.client_action_id = k.client_action_id
    WHERE a.client_action_id IS NOT NULL
    ORDER BY a.seq"""
_FIND_SEQS = f"{_SELECT} WHERE seq = ANY($1::bigint[]) ORDER BY seq"
_FIND_JTIS = "SELECT proof_jti FROM action_log WHERE proof_jti = ANY($1::text[])"
_LOAD_RECENT = f"{_SELECT} WHERE at >= $1 OR proof_exp >= $1 ORDER BY seq"
_HISTORY = f"{_SELECT} WHERE user_id = $1 ORDER BY seq DESC LIMIT $2"
_HISTORY_BEFORE = f"{_SELECT} WHERE user_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3"
_SCAN = f"{_SELECT} WHERE seq >= $1 ORDER BY seq LIMIT $2"
_LOCK_HOLDER = """SELECT l.pid, a.application_name, host(a.client_addr) AS client_addr
    FROM pg_locks AS l LEFT JOIN pg_stat_activity AS a ON a.pid = l.pid
    WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
        AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
        AND l.classid = $1 AND l.objid = $2"""
_INT64_MIN = -(2**63)

# Failures after which the connection cannot be trusted: drop it and connect again.
# InternalClientError: asyncpg's protocol state can be left confused when the server
# ends a session while the client is starting a command on it.
_BROKEN = (
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError,
    asyncpg.InternalClientError,
    OSError,
)
# Everything a database call may raise that means "not now", not "a bug here".
_UNAVAILABLE = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
    TimeoutError,
)

T = TypeVar("T")


class PostgresLog(ActionLog):
    def __init__(
        self,
        dsn: str,
        *,
        pool_size: int = 4,
        command_timeout: float = 10.0,
        connect_timeout: float = 5.0,
        bulk_timeout: float = 120.0,
        application_name: str = "scoreboard",
    ) -> None:
        if pool_size < 1:
            raise ValueError("pool_size must be >= 1")
        self._dsn = dsn
        self._pool_size = pool_size
        self._command_timeout = command_timeout
        self._connect_timeout = connect_timeout
        self._bulk_timeout = bulk_timeout  # load() and scan() move millions of rows
        self._server_settings = {
            "synchronous_commit": "on",
            "application_name": application_name,
        }
        self._pool: asyncpg.Pool | None = None  # None while closed
        self._writer: asyncpg.Connection | None = None
        self._writer_pid: int | None = None  # backend pid of the last lock-holding session
        self._write_lock = asyncio.Lock()

    async def open(self) -> None:
        if self._pool is not None:
            return
        writer = await self._connect()
        try:
            await self._take_lock(writer, first=True)
            await self._migrate(writer)
            pool = await asyncpg.create_pool(
                self._dsn,
                min_size=1,
                max_size=self._pool_size,
                timeout=self._connect_timeout,
                command_timeout=self._command_timeout,
                server_settings=self._server_settings,
            )
        except BaseException as exc:
            await _close_quietly(writer, self._connect_timeout)
            if isinstance(exc, _UNAVAILABLE):
                raise StoreUnavailable(f"cannot open the PostgreSQL log: {exc!r}") from exc
            raise
        self._writer, self._writer_pid, self._pool = writer, writer.get_server_pid(), pool

    async def close(self) -> None:
        async with self._write_lock:  # let an append in flight finish first
            pool, self._pool = self._pool, None
            writer, self._writer, self._writer_pid = self._writer, None, None
            if writer is not None:
                await _close_quietly(writer, self._connect_timeout)
            if pool is not None:
                try:
                    await asyncio.wait_for(pool.close(), self._connect_timeout)
                except (TimeoutError, *_UNAVAILABLE):
                    pool.terminate()

    async def append(self, batch: CommitBatch) -> None:
        prepared = prepare(batch)
        args = _append_args(prepared)
        async with self._write_lock:
            # One retry after a lost connection: if the first attempt did commit,
            # the retry finds the batch already there and returns.
            for attempt in (1, 2):
                conn = await self._writer_conn()
                try:
                    await conn.execute(_APPEND, *args)
                    return
                except asyncpg.UniqueViolationError as exc:
                    await self._explain_conflict(conn, prepared, exc)
                    return
                except _UNAVAILABLE as exc:
                    lost = _broken(conn, exc)
                    if lost or isinstance(exc, TimeoutError):
                        # After a timeout the statement may still run on the server;
                        # start over on a fresh session rather than reuse this one.
                        self._writer = None
                        conn.terminate()
                    if not lost or attempt == 2:
                        raise StoreUnavailable(f"append failed: {exc!r}") from exc

    async def last_seq(self) -> int:
        async def run(conn: asyncpg.Connection) -> int:
            return int(await conn.fetchval("SELECT coalesce(max(seq), 0) FROM action_log"))

        return await self._read(run)

    async def load(self, since: float) -> Snapshot:
        timeout = self._bulk_timeout

        async def run(conn: asyncpg.Connection) -> Snapshot:
            # One snapshot for all four answers.
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                last = await conn.fetchval("SELECT coalesce(max(seq), 0) FROM action_log")
                scores = await conn.fetch(
                    "SELECT board, user_id, score, reached_seq FROM board_scores",
                    timeout=timeout,
                )
                users = await conn.fetch(
                    "SELECT user_id, display_name, frozen, hidden, flag FROM users",
                    timeout=timeout,
                )
                recent = await conn.fetch(_LOAD_RECENT, since, timeout=timeout)
            return Snapshot(
                last_seq=int(last),
                scores=score_rows(scores),
                users=user_rows(users),
                recent=records_from_rows(recent),
            )

        with gc_paused():
            return await self._read(run)

    async def find_actions(self, keys: Sequence[tuple[str, str]]) -> list[LogRecord]:
        if not keys:
            return []
        user_ids, action_ids = _split_keys(unique(keys))

        async def run(conn: asyncpg.Connection) -> list[LogRecord]:
            return records_from_rows(await conn.fetch(_FIND_ACTIONS, user_ids, action_ids))

        return await self._read(run)

    async def history(self, user_id: str, *, before_seq: int | None, limit: int) -> list[LogRecord]:
        if limit <= 0:
            return []

        async def run(conn: asyncpg.Connection) -> list[LogRecord]:
            if before_seq is None:
                rows = await conn.fetch(_HISTORY, user_id, limit)
            else:
                rows = await conn.fetch(_HISTORY_BEFORE, user_id, before_seq, limit)
            return records_from_rows(rows)

        return await self._read(run)

    async def scan(
        self, *, after: int | None = None, chunk: int = 10_000
    ) -> AsyncIterator[list[LogRecord]]:
        if chunk < 1:
            raise ValueError("chunk must be >= 1")
        start = _INT64_MIN if after is None else after + 1
        while True:
            # Keyset pages: each chunk is its own query, so a chunk that fails on a
            # dead connection is simply asked again from where it stopped.
            async def run(conn: asyncpg.Connection, start: int = start) -> list[LogRecord]:
                rows = await conn.fetch(_SCAN, start, chunk, timeout=self._bulk_timeout)
                return records_from_rows(rows)

            records = await self._read(run)
            if not records:
                return
            yield records
            start = records[-1].seq + 1

    async def ping(self) -> bool:
        async def run(conn: asyncpg.Connection) -> bool:
            return bool(await conn.fetchval("SELECT true"))

        try:
            return await self._read(run)
        except StoreError:
            return False

    # -- connections and the writer lock ----------------------------------------------

    async def _connect(self) -> asyncpg.Connection:
        try:
            return await asyncpg.connect(
                self._dsn,
                timeout=self._connect_timeout,
                command_timeout=self._command_timeout,
                server_settings=self._server_settings,
            )
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(f"cannot connect to PostgreSQL: {exc!r}") from exc

    async def _writer_conn(self) -> asyncpg.Connection:
        """The lock-holding session, re-established (and the lock re-taken) if lost."""
        if self._pool is None:
            raise StoreUnavailable("the PostgreSQL log is not open")
        conn = self._writer
        if conn is not None and not conn.is_closed():
            return conn
        self._writer = None
        conn = await self._connect()
        try:
            await self._take_lock(conn, first=False)
        except BaseException as exc:
            conn.terminate()
            if isinstance(exc, _UNAVAILABLE):
                raise StoreUnavailable(f"cannot retake the writer lock: {exc!r}") from exc
            raise
        self._writer, self._writer_pid = conn, conn.get_server_pid()
        return conn

    async def _take_lock(self, conn: asyncpg.Connection, *, first: bool) -> None:
        holder = None
        for _ in range(2):  # twice: the holder may let go between the two queries
            if await conn.fetchval("SELECT pg_try_advisory_lock($1)", WRITER_LOCK_KEY):
                return
            holder = await conn.fetchrow(
                _LOCK_HOLDER, (WRITER_LOCK_KEY >> 32) & 0xFFFFFFFF, WRITER_LOCK_KEY & 0xFFFFFFFF
            )
            if holder is not None:
                break
        if not first and (holder is None or holder["pid"] == self._writer_pid):
            # Our own previous session still holds it: the server is still ending it
            # (terminated, or dropped by us after a timeout). It goes away shortly.
            try:
                async with conn.transaction():
                    await conn.execute(
                        "SELECT set_config('lock_timeout', $1, true)",
                        f"{int(self._connect_timeout * 1000)}ms",
                    )
                    await conn.execute("SELECT pg_advisory_lock($1)", WRITER_LOCK_KEY)
                return
            except asyncpg.LockNotAvailableError as exc:
                raise StoreUnavailable(
                    f"the writer lock is still held by our previous session "
                    f"(backend pid {self._writer_pid})"
                ) from exc
        who = _describe_holder(holder)
        database = await conn.fetchval("SELECT current_database()")
        if first:
            raise WriterLockHeld(
                f"another process is already the writer of PostgreSQL database "
                f"{database!r}: {who} holds advisory lock {WRITER_LOCK_KEY}; "
                f"stop it or point this one at another database"
            )
        raise StoreUnavailable(
            f"lost the writer lock on database {database!r} and another process took it "
            f"({who}); this process must stop writing"
        )

    async def _migrate(self, conn: asyncpg.Connection) -> None:
        # Runs under the writer lock, so two processes never migrate at once.
        async with conn.transaction():
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version ("
                " version INTEGER PRIMARY KEY,"
                " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            current = await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_version")
            if current > SCHEMA_VERSION:
                raise StoreUnavailable(
                    f"the database has schema version {current}; this code knows up to "
                    f"{SCHEMA_VERSION}: upgrade the program"
                )
            for version in range(current + 1, SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS[version]:
                    await conn.execute(statement)
                await conn.execute("INSERT INTO schema_version (version) VALUES ($1)", version)

    # -- helpers ----------------------------------------------------------------------

    async def _explain_conflict(
        self, conn: asyncpg.Connection, prepared: PreparedBatch, exc: Exception
    ) -> None:
        """After a unique violation (nothing was written): return if the batch was
        already committed, else raise the matching error."""
        user_ids, action_ids = _split_keys(unique(prepared.action_keys))
        try:
            stored = records_from_rows(await conn.fetch(_FIND_SEQS, prepared.seqs))
            if already_committed(prepared, stored):
                return
            taken = await conn.fetch(_FIND_ACTIONS, user_ids, action_ids)
            jtis = await conn.fetch(_FIND_JTIS, unique(prepared.proof_jtis))
        except _UNAVAILABLE as lookup_exc:
            raise StoreUnavailable(f"append failed: {exc!r}") from lookup_exc
        raise_conflicts(
            prepared,
            {(r["user_id"], r["client_action_id"]) for r in taken},
            {r["proof_jti"] for r in jtis},
        )
        raise StoreUnavailable(f"append refused: {exc!r}; nothing was written") from exc

    async def _read(self, run: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """Run a read on a pooled connection, retrying on connections found dead.

        After the server drops its sessions every idle pooled connection may be dead
        without the client knowing yet, hence up to one attempt per connection.
        """
        for attempt in range(self._pool_size + 1):
            pool = self._pool
            if pool is None:
                raise StoreUnavailable("the PostgreSQL log is not open")
            broken = False
            try:
                async with pool.acquire(timeout=self._connect_timeout) as conn:
                    try:
                        return await run(conn)
                    except _UNAVAILABLE as exc:
                        # Checked before release: a released proxy answers nothing.
                        broken = _broken(conn, exc)
                        if broken:
                            conn.terminate()  # the pool replaces it; never reuse it
                        raise
            except _UNAVAILABLE as exc:
                # Only a session that died under us is worth another try; when a new
                # connection cannot be made, another attempt would just wait again.
                if not broken or attempt == self._pool_size:
                    raise StoreUnavailable(f"read failed: {exc!r}") from exc
        raise AssertionError("unreachable")


def _broken(conn: asyncpg.Connection, exc: BaseException) -> bool:
    return isinstance(exc, _BROKEN) or conn.is_closed()


def _append_args(prepared: PreparedBatch) -> list[list[Any]]:
    return [
        *_columns(prepared.records, len(RECORD_COLUMNS)),
        *_columns(prepared.scores, 4),
        *_columns(prepared.users, 5),
    ]


def _columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    """Rows to one list per column, the shape `unnest` takes."""
    if not rows:
        return [[] for _ in range(width)]
    return [list(column) for column in zip(*rows, strict=True)]


def _split_keys(keys: Sequence[tuple[str, str]]) -> tuple[list[str], list[str]]:
    return [k[0] for k in keys], [k[1] for k in keys]


def _describe_holder(holder: Any) -> str:
    if holder is None:
        return "a session that has just gone"
    return (
        f"backend pid {holder['pid']} (application {holder['application_name']!r}, "
        f"client {holder['client_addr'] or 'local socket'})"
    )


async def _close_quietly(conn: asyncpg.Connection, wait: float) -> None:
    """Release the lock explicitly, then close: the server ends a closed session a
    moment later, and a successor opening right away must find the lock free."""
    if conn.is_closed():
        return
    try:
        await conn.execute("SELECT pg_advisory_unlock_all()", timeout=wait)
        await conn.close(timeout=wait)
    except _UNAVAILABLE:
        conn.terminate()
