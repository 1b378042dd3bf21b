"""`PostgresLog`: the action log in PostgreSQL, for production.

The statements live here; the sessions they run on (the writer's, which holds the
single-writer lock and is the fence, and the read pool) in `postgres_sessions`.

Each append is a single `INSERT … SELECT FROM ROWS FROM (…)` statement with the upserts
in data-modifying CTEs: one round trip, atomic on its own, and measured faster than
`copy_records_to_table` or `executemany` in a transaction for batches of 1 to 500. Each
column travels as one parameter: a JSON array (one `orjson.dumps` per column; binary
arrays cost the driver a type check per element) except the doubles, which stay binary
`float8[]` so that every value, NaN included, arrives exactly as given.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import Any

import asyncpg
import orjson

from scoreboard.core.records import (
    CommitBatch,
    LogRecord,
    PeriodClosedRecord,
    PeriodExclusionRecord,
    SnapshotSink,
)
from scoreboard.storage import schema
from scoreboard.storage.archive import (
    TOP,
    ArchiveQueries,
    exclusion_values,
    period_values,
    rows_json,
)
from scoreboard.storage.base import (
    ActionLog,
    ArchivedPeriod,
    ArchiveRow,
    ArchiveValues,
    SnapshotInfo,
    StoredSnapshot,
    StoreError,
    StoreUnavailable,
)
from scoreboard.storage.bulk import gc_paused, return_free_memory
from scoreboard.storage.postgres.sessions import UNAVAILABLE, WRITER_LOCK_KEY, Sessions
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

log = logging.getLogger("scoreboard.storage")


def _binary(column: schema.Column) -> bool:
    """Whether a column travels as a `float8[]` literal (`_doubles`) rather than as a
    JSON array: every double exactly, NaN and infinities included."""
    return column.type is schema.REAL


def _doubles(values: Sequence[float | None]) -> str:
    """A `float8[]` literal: the shortest text of each double that reads back as the
    same double, and never more than one element. Not a list parameter, whose
    every element the driver checks against the collection ABCs (about 3% of the
    writer's instructions per forwarded frame of 20 actions).

    orjson writes that text for finite doubles (and whole numbers as they are) at a
    fraction of `repr`'s cost (which was 2% of the service's instructions per single
    action), but writes NaN and the infinities as null: its text is used only when all
    that it holds besides digits and separators is one null per None."""
    try:
        text = orjson.dumps(values)
    except orjson.JSONEncodeError:  # an integer past 64 bits: `repr` below
        text = b"?"
    rest = text.translate(None, _FINITE)
    if not rest or rest == b"null" * values.count(None):
        return "{" + text[1:-1].decode().replace("null", "NULL") + "}"
    return "{" + ",".join(["NULL" if v is None else repr(float(v)) for v in values]) + "}"


# What orjson's text of finite numbers holds: digits, sign, point, exponent, the list
_FINITE = b"0123456789-+.e,[]"


def _insert_arrays(table: schema.Table, first: int, *, upsert: bool = False) -> str:
    """Insert rows given as one array per column, parameters numbered from `first`:
    JSON arrays whose elements are cast from text, or `float8[]` literals (`_binary`)."""
    params = schema.POSTGRES.params(len(table.columns), first)
    sources, values = [], []
    for i, (p, c) in enumerate(zip(params, table.columns, strict=True)):
        kind = schema.POSTGRES.types[c.type]
        if _binary(c):
            sources.append(f"unnest({p}::text::{kind}[])")
            values.append(f"c{i}")
        else:
            sources.append(f"json_array_elements_text({p}::json)")
            values.append(f"c{i}" if c.type is schema.TEXT else f"c{i}::{kind}")
    names = ", ".join(f"c{i}" for i in range(len(table.columns)))
    rows = f"SELECT {', '.join(values)} FROM ROWS FROM ({', '.join(sources)}) AS t ({names})"
    return schema.insert(table, rows, upsert=upsert)


# Every append tells listeners (followers) the batch's last seq, in its own transaction:
# the notification is delivered exactly when the records become visible.
LOG_CHANNEL = "scoreboard_log"

# A user row equal to the stored one is not updated (no new row version to write).
_USERS_CHANGED = " WHERE ({}) IS DISTINCT FROM ({})".format(
    ", ".join(f"users.{c}" for c in schema.USERS.column_names[1:]),
    ", ".join(f"excluded.{c}" for c in schema.USERS.column_names[1:]),
)
# The records, then the rows they change (upserted), as one statement; its parameters
# are the three tables' columns in order (`_append_args`).
_SCORES_FIRST = 1 + len(schema.ACTION_LOG.columns)
_USERS_FIRST = _SCORES_FIRST + len(schema.BOARD_SCORES.columns)
_APPEND = f"""WITH
    records AS ({_insert_arrays(schema.ACTION_LOG, 1)}),
    scores AS ({_insert_arrays(schema.BOARD_SCORES, _SCORES_FIRST, upsert=True)}),
    users AS ({_insert_arrays(schema.USERS, _USERS_FIRST, upsert=True)}{_USERS_CHANGED})
SELECT pg_notify('{LOG_CHANNEL}',
    (SELECT max(s::bigint) FROM json_array_elements_text($1::json) AS s)::text)"""
_FIND_ACTIONS = f"""SELECT {", ".join(f"a.{c}" for c in schema.RECORD_COLUMNS)}
    FROM unnest($1::text[], $2::text[]) AS k (user_id, client_action_id)
    JOIN action_log AS a
        ON a.user_id = k.user_id AND a.client_action_id = k.client_action_id
    WHERE a.client_action_id IS NOT NULL
    ORDER BY a.seq"""
_FIND_SEQS = f"{schema.SELECT_RECORDS} WHERE seq = ANY($1::bigint[]) ORDER BY seq"
_FIND_JTIS = "SELECT proof_jti FROM action_log WHERE proof_jti = ANY($1::text[])"
_LOAD_RECENT = f"{schema.SELECT_RECORDS} WHERE at >= $1 OR proof_exp >= $1 ORDER BY seq"
_ARCHIVE = ArchiveQueries.of(schema.POSTGRES)
# A chunk's rows as one JSON array of [position, user_id, score, rank] (`rows_json`):
# encoded by orjson, not type-checked value by value in the driver.
_INSERT_ARCHIVE = f"""INSERT INTO archive ({schema.ARCHIVE.column_list})
    SELECT $1, $2, (r ->> 0)::bigint, r ->> 1, (r ->> 2)::bigint, (r ->> 3)::bigint
    FROM json_array_elements($3::json) AS r ON CONFLICT DO NOTHING"""
_RECORDS = schema.RecordQueries.of(schema.POSTGRES)
_UPSERT_SNAPSHOT = schema.insert(schema.SNAPSHOTS, "VALUES ($1, $2, $3, $4, $5)", upsert=True)
_READ_SNAPSHOT = f"SELECT {schema.SNAPSHOTS.column_list} FROM snapshots WHERE seq = $1"


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
        follower: bool = False,
    ) -> None:
        self._sessions = Sessions(
            dsn,
            pool_size=pool_size,
            command_timeout=command_timeout,
            connect_timeout=connect_timeout,
            application_name=application_name,
        )
        self._bulk_timeout = bulk_timeout  # load() and scan() move millions of rows
        self.follower = follower  # open() takes no lock; the log is read, never written

    async def open(self) -> None:
        if self._sessions.is_open:
            return
        if not self.follower:
            await self._sessions.open(_migrate)
            return
        await self._sessions.open_reader()
        if not await self._sessions.read(_has_schema):
            await self._sessions.close()
            raise StoreUnavailable("no writer has created the schema in this database yet")

    async def take_over(self) -> None:
        """(Followers) wait until this process holds the writer lock; from then on it
        appends on that session, which is the fence like a writer's own."""
        await self._sessions.wait_for_lock(_migrate)
        self.follower = False

    async def watch_lock(self, every: float = 1.0) -> None:
        """(The writer) Check the lock's session every `every` seconds, so a writer whose
        session was ended learns it without waiting for a write: the check runs on the
        write session exactly as an append would, so it raises `WriterFenced` once
        another process holds the lock, and re-takes it if nobody does."""
        while True:
            await asyncio.sleep(every)  # a timer: the check itself is the point
            try:
                # Shielded: a shutdown never cuts a statement short on the write session.
                await asyncio.shield(self._sessions.write(_alive))
            except StoreUnavailable as exc:  # no verdict; the fence still holds
                log.warning("cannot check the writer lock: %s", exc)

    async def listen(self, on_seq: Callable[[int], None],
                     on_lost: Callable[[], None]) -> asyncpg.Connection:
        """A dedicated session told of every append (`on_seq(last seq)`); `on_lost` when
        it ends. The caller closes it."""
        conn = await self._sessions.connect()

        def notified(_conn: object, _pid: int, _channel: str, payload: str) -> None:
            on_seq(int(payload))

        try:
            await conn.add_listener(LOG_CHANNEL, notified)
        except UNAVAILABLE as exc:
            conn.terminate()
            raise StoreUnavailable(f"LISTEN failed: {exc!r}") from exc
        conn.add_termination_listener(lambda _conn: on_lost())
        return conn

    async def publish_writer(self, address: str) -> None:
        """Record where the writer takes forwarded commands, on the lock's session."""
        async def run(conn: asyncpg.Connection) -> None:
            await conn.execute(_WRITER_TABLE)
            await conn.execute(_PUBLISH_WRITER, address)

        await self._sessions.write(run)

    async def writer_address(self) -> str | None:
        """Where the current lock holder takes forwarded commands, if it published it."""
        async def run(conn: asyncpg.Connection) -> str | None:
            if not await conn.fetchval("SELECT to_regclass('cluster_writer') IS NOT NULL"):
                return None
            value = await conn.fetchval(_LOCATE_WRITER, *_LOCK_PARTS)
            return None if value is None else str(value)

        return await self._sessions.read(run)

    async def close(self) -> None:
        await self._sessions.close()

    async def append(self, batch: CommitBatch) -> None:
        prepared = prepare(batch)
        args = _append_args(prepared)

        async def run(conn: asyncpg.Connection) -> None:
            try:
                await conn.execute(_APPEND, *args)
            except asyncpg.UniqueViolationError as exc:
                await _explain_conflict(conn, prepared, exc)

        # A retry after a lost session is safe: if the first attempt did commit, the
        # retry meets the unique index, finds the batch already there and returns.
        await self._sessions.write(run)

    async def last_seq(self) -> int:
        async def run(conn: asyncpg.Connection) -> int:
            return int(await conn.fetchval(schema.LAST_SEQ))

        return await self._sessions.read(run)

    async def load(self, since: float, into: SnapshotSink, *, chunk: int = 10_000) -> None:
        if chunk < 1:
            raise ValueError("chunk must be >= 1")
        timeout = self._bulk_timeout
        streams: tuple[tuple[str, tuple[Any, ...], Callable[[list[Any]], None]], ...] = (
            (schema.SELECT_SCORES, (), into.scores),
            (schema.SELECT_USERS, (), into.users),
            (_LOAD_RECENT, (since,), lambda rows: into.recent(records_from_rows(rows))),
        )
        delivered = False

        async def run(conn: asyncpg.Connection) -> int:
            nonlocal delivered
            # One snapshot for every chunk; cursors need the transaction anyway.
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                last = int(await conn.fetchval(schema.LAST_SEQ))
                closes = await conn.fetch(schema.LAST_CLOSES)
                into.periods(last_closes(closes), float(await conn.fetchval(schema.LAST_AT)))
                delivered = True
                for query, args, deliver in streams:
                    cursor = await conn.cursor(query, *args)
                    while rows := await cursor.fetch(chunk, timeout=timeout):
                        delivered = True
                        deliver(rows)
            return last

        with gc_paused():
            # A session found dead is retried only before any row went to `into`.
            last_seq = await self._sessions.read(run, may_retry=lambda: not delivered)
        into.end(last_seq)
        return_free_memory()

    async def find_actions(self, keys: Sequence[tuple[str, str]]) -> list[LogRecord]:
        if not keys:
            return []
        user_ids, action_ids = _split_keys(unique(keys))

        async def run(conn: asyncpg.Connection) -> list[LogRecord]:
            return records_from_rows(await conn.fetch(_FIND_ACTIONS, user_ids, action_ids))

        return await self._sessions.read(run)

    async def history(self, user_id: str, *, before_seq: int | None, limit: int) -> list[LogRecord]:
        if limit <= 0:
            return []

        async def run(conn: asyncpg.Connection) -> list[LogRecord]:
            if before_seq is None:
                rows = await conn.fetch(_RECORDS.history, user_id, limit)
            else:
                rows = await conn.fetch(_RECORDS.history_before, user_id, before_seq, limit)
            return records_from_rows(rows)

        return await self._sessions.read(run)

    async def scan(
        self, *, after: int | None = None, chunk: int = 10_000
    ) -> AsyncGenerator[list[LogRecord], None]:
        if chunk < 1:
            raise ValueError("chunk must be >= 1")
        start = INT64_MIN if after is None else after + 1
        while True:
            # Keyset pages: each chunk is its own query, so a chunk that fails on a
            # dead connection is simply asked again from where it stopped.
            async def run(conn: asyncpg.Connection, start: int = start) -> list[LogRecord]:
                rows = await conn.fetch(_RECORDS.scan, start, chunk, timeout=self._bulk_timeout)
                return records_from_rows(rows)

            records = await self._sessions.read(run)
            if not records:
                return
            yield records
            start = records[-1].seq + 1

    async def write_archive(self, period: ArchivedPeriod, rows: Sequence[ArchiveValues]
                            ) -> None:
        body = await rows_json(rows)

        async def run(conn: asyncpg.Connection) -> None:
            async with conn.transaction():
                await conn.execute(_INSERT_ARCHIVE, period.board, period.period, body,
                                   timeout=self._bulk_timeout)
                await conn.execute(_ARCHIVE.upsert_period, *period_values(period))

        # Appends never queue behind an archive. The archive is a function of the log:
        # whoever writes it writes the same rows, and those written before are ignored.
        await self._sessions.write_beside(run)

    async def archive_page(self, board: str, period: str, after_rank: int, limit: int
                           ) -> list[ArchiveRow]:
        async def run(conn: asyncpg.Connection) -> list[ArchiveRow]:
            return [ArchiveRow(*r) for r in await conn.fetch(
                _ARCHIVE.page, board, period, after_rank, max(limit, 0))]

        return await self._sessions.read(run)

    async def archive_user(self, board: str, period: str, user_id: str) -> ArchiveRow | None:
        async def run(conn: asyncpg.Connection) -> ArchiveRow | None:
            row = await conn.fetchrow(_ARCHIVE.user, board, period, user_id)
            return None if row is None else ArchiveRow(*row)

        return await self._sessions.read(run)

    async def periods(self, board: str, before: str | None, limit: int
                      ) -> list[ArchivedPeriod]:
        async def run(conn: asyncpg.Connection) -> list[ArchivedPeriod]:
            until = INT64_MAX
            if before is not None:
                until = await conn.fetchval(_ARCHIVE.closed_seq, board, before) or 0
            found = [ArchivedPeriod(*r) for r in await conn.fetch(
                _ARCHIVE.periods, board, until, max(limit, 0))]
            return [p._replace(top=tuple(ArchiveRow(*r) for r in await conn.fetch(
                _ARCHIVE.page, board, p.period, 0, TOP))) for p in found]

        return await self._sessions.read(run)

    async def archived_period(self, board: str, period: str) -> ArchivedPeriod | None:
        async def run(conn: asyncpg.Connection) -> ArchivedPeriod | None:
            row = await conn.fetchrow(_ARCHIVE.one, board, period)
            return None if row is None else ArchivedPeriod(*row)

        return await self._sessions.read(run)

    async def unarchived(self) -> list[PeriodClosedRecord]:
        async def run(conn: asyncpg.Connection) -> list[PeriodClosedRecord]:
            return [r for r in records_from_rows(await conn.fetch(_ARCHIVE.unarchived))
                    if isinstance(r, PeriodClosedRecord)]

        return await self._sessions.read(run)

    async def exclude_from_archive(self, board: str, period: str, user_id: str) -> bool:
        async def run(conn: asyncpg.Connection) -> bool:
            async with conn.transaction():
                position = await conn.fetchval(_ARCHIVE.user, board, period, user_id)
                if position is None:
                    return False
                for sql, args in zip(_ARCHIVE.exclude,
                                     exclusion_values(board, period, user_id, position),
                                     strict=True):
                    await conn.execute(sql, *args)
                return True

        return bool(await self._sessions.write(run))

    async def exclusions(self) -> list[PeriodExclusionRecord]:
        async def run(conn: asyncpg.Connection) -> list[PeriodExclusionRecord]:
            return [r for r in records_from_rows(await conn.fetch(_ARCHIVE.exclusions))
                    if isinstance(r, PeriodExclusionRecord)]

        return await self._sessions.read(run)

    async def ping(self) -> bool:
        async def run(conn: asyncpg.Connection) -> bool:
            return bool(await conn.fetchval("SELECT true"))

        try:
            return await self._sessions.read(run)
        except StoreError:
            return False

    async def save_snapshot(self, snapshot: StoredSnapshot, *, keep: int) -> None:
        if keep < 1:
            raise ValueError("keep must be >= 1")
        row = (snapshot.seq, snapshot.created_at, snapshot.format, snapshot.checksum,
               snapshot.body)

        async def run(conn: asyncpg.Connection) -> None:
            async with conn.transaction():
                await conn.execute(_UPSERT_SNAPSHOT, *row, timeout=self._bulk_timeout)
                await conn.execute(schema.PRUNE_SNAPSHOTS.format(keep=int(keep)))

        # On a pooled session, not the lock's: a snapshot is a copy of a prefix of the
        # log whoever writes it (only committed records are ever applied), and megabytes
        # on the lock's session would hold appends up behind them.
        await self._sessions.read(run)

    async def snapshots(self) -> list[SnapshotInfo]:
        async def run(conn: asyncpg.Connection) -> list[SnapshotInfo]:
            return [SnapshotInfo(*row) for row in await conn.fetch(schema.LIST_SNAPSHOTS)]

        return await self._sessions.read(run)

    async def read_snapshot(self, seq: int) -> StoredSnapshot | None:
        async def run(conn: asyncpg.Connection) -> StoredSnapshot | None:
            row = await conn.fetchrow(_READ_SNAPSHOT, seq, timeout=self._bulk_timeout)
            return None if row is None else StoredSnapshot(*row)

        return await self._sessions.read(run)


async def _alive(conn: asyncpg.Connection) -> None:
    await conn.execute("SELECT 1")


async def _has_schema(conn: asyncpg.Connection) -> bool:
    return bool(await conn.fetchval("SELECT to_regclass('schema_version') IS NOT NULL"))


_WRITER_TABLE = """CREATE TABLE IF NOT EXISTS cluster_writer (
    id INTEGER PRIMARY KEY CHECK (id = 1), address TEXT NOT NULL, pid INTEGER NOT NULL,
    since TIMESTAMPTZ NOT NULL DEFAULT now())"""
_PUBLISH_WRITER = """INSERT INTO cluster_writer (id, address, pid)
    VALUES (1, $1, pg_backend_pid())
    ON CONFLICT (id) DO UPDATE SET address = $1, pid = pg_backend_pid(), since = now()"""
# Only an address published by the session holding the lock now counts.
_LOCATE_WRITER = """SELECT w.address FROM cluster_writer AS w JOIN pg_locks AS l
    ON l.pid = w.pid AND l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
        AND l.classid = $1 AND l.objid = $2"""
_LOCK_PARTS = ((WRITER_LOCK_KEY >> 32) & 0xFFFFFFFF, WRITER_LOCK_KEY & 0xFFFFFFFF)


async def _migrate(conn: asyncpg.Connection) -> None:
    # Runs on the writer lock's session, so two processes never migrate at once.
    async with conn.transaction():
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            " version INTEGER PRIMARY KEY,"
            " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        current = await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_version")
        for version, statements in schema.upgrades(schema.POSTGRES, current, "the database"):
            for statement in statements:
                await conn.execute(statement)
            await conn.execute("INSERT INTO schema_version (version) VALUES ($1)", version)


async def _explain_conflict(
    conn: asyncpg.Connection, prepared: PreparedBatch, exc: Exception
) -> None:
    """After a unique violation (nothing was written): return if the batch was already
    committed, else raise the matching error."""
    user_ids, action_ids = _split_keys(unique(prepared.action_keys))
    try:
        stored = records_from_rows(await conn.fetch(_FIND_SEQS, prepared.seqs))
        if already_committed(prepared, stored):
            return
        taken = await conn.fetch(_FIND_ACTIONS, user_ids, action_ids)
        jtis = await conn.fetch(_FIND_JTIS, unique(prepared.proof_jtis))
    except UNAVAILABLE as lookup_exc:
        raise StoreUnavailable(f"append failed: {exc!r}") from lookup_exc
    raise_conflicts(
        prepared,
        {(r["user_id"], r["client_action_id"]) for r in taken},
        {r["proof_jti"] for r in jtis},
    )
    raise StoreUnavailable(f"append refused: {exc!r}; nothing was written") from exc


def _append_args(prepared: PreparedBatch) -> list[Any]:
    return [
        *_columns(prepared.records, schema.ACTION_LOG),
        *_columns(prepared.scores, schema.BOARD_SCORES),
        *_columns(prepared.users, schema.USERS),
    ]


def _columns(rows: Sequence[Sequence[Any]], table: schema.Table) -> list[Any]:
    """Rows to one parameter per column, the shapes `_insert_arrays` takes. The rows
    were checked by `prepare`: no NUL, valid UTF-8, integers within 64 bits."""
    columns = zip(*rows, strict=True) if rows else (() for _ in table.columns)
    binary = _BINARY.get(table.name) or tuple(_binary(c) for c in table.columns)
    dumps = orjson.dumps
    return [
        _doubles(values) if is_binary else dumps(values).decode()
        for is_binary, values in zip(binary, columns, strict=True)
    ]


# Which columns of each appended table travel as binary arrays: asked once, not per
# column of every commit.
_BINARY = {t.name: tuple(_binary(c) for c in t.columns)
           for t in (schema.ACTION_LOG, schema.BOARD_SCORES, schema.USERS)}


def _split_keys(keys: Sequence[tuple[str, str]]) -> tuple[list[str], list[str]]:
    return [k[0] for k in keys], [k[1] for k in keys]
