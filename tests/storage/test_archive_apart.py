"""The archive off the writer's path: an archive write that waits never holds an append
up (SQLite: the archive's own file; PostgreSQL: a pooled session, not the lock's), and
on SQLite the archive file is attached for reads, rebuilt from the log when it is lost,
and absent from the log's own file. No mocks; no sleeps."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from pathlib import Path

import asyncpg
import orjson
import pytest

from scoreboard.core.recovery import Restore
from scoreboard.storage import ActionLog, SqliteLog, schema
from scoreboard.storage.archive import rows_json
from scoreboard.storage.base import ArchivedPeriod, ArchiveRow, WriterFenced
from scoreboard.storage.postgres.log import PostgresLog
from scoreboard.writer.archiver import Archiver
from tests.storage.test_archiver import EXPECTED, engine, run_archiver, stop, two_days
from tests.storage.test_contract import Backend, backend, batch, rec, store

__all__ = ["backend", "store"]  # the contract's fixtures, over the three backends

PERIOD = ArchivedPeriod("daily", "2026-12-04", 0.0, 86_400.0, 2, 1, True)
ROWS = [ArchiveRow(1, "amy", 20, 1), ArchiveRow(2, "bob", 10, 2)]


def lose_archive(folder: Path) -> bool:
    """Delete the archive file beside `scoreboard.db` and its WAL; whether it was there."""
    archive = folder / "scoreboard-archive.db"
    there = archive.is_file()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{archive}{suffix}").unlink(missing_ok=True)
    return there


@asynccontextmanager
async def archive_locked(store: ActionLog, backend: Backend) -> AsyncIterator[None]:
    """Another session holds the archive's write lock meanwhile."""
    if isinstance(store, SqliteLog):
        with closing(sqlite3.connect(store.archive_path, isolation_level=None)) as other:
            other.execute("BEGIN IMMEDIATE")
            try:
                yield
            finally:
                other.execute("ROLLBACK")
        return
    other = await asyncpg.connect(backend.dsn)
    try:
        async with other.transaction():
            await other.execute("LOCK TABLE archive IN ACCESS EXCLUSIVE MODE")
            yield
    finally:
        await other.close()


async def test_an_append_commits_while_an_archive_write_waits(backend: Backend,
                                                              store: ActionLog) -> None:
    if backend.name == "memory":
        pytest.skip("memory has no lock to wait for")
    async with archive_locked(store, backend):
        writing = asyncio.create_task(store.write_archive(PERIOD, ROWS))
        await asyncio.wait_for(store.append(batch(rec(1))), 5)  # a net: it never waits
        assert await store.last_seq() == 1
        assert not writing.done()  # still waiting for the lock the other session holds
    await asyncio.wait_for(writing, 10)
    assert await store.archive_page("daily", "2026-12-04", 0, 10) == ROWS


async def test_a_lost_archive_file_is_rebuilt_from_the_log(tmp_path: Path) -> None:
    path = tmp_path / "scoreboard.db"
    store = SqliteLog(path)
    await store.open()
    try:
        live = engine()
        archiver = Archiver(live, store, engine)
        task = await run_archiver(archiver)
        await two_days(store, live, archiver)
        await asyncio.wait_for(archiver.idle(), 10)
        await stop(archiver, task)
    finally:
        await store.close()
    assert lose_archive(tmp_path)
    again = SqliteLog(path)
    await again.open()
    try:
        assert await again.periods("daily", None, 10) == []
        [close] = await again.unarchived()
        restarted = engine()
        await again.load(0.0, into=Restore(restarted))
        archiver = Archiver(restarted, again, engine)
        await stop(archiver, await run_archiver(archiver))
        assert await again.unarchived() == []
        assert await again.archive_page("daily", "2026-12-04", 0, 10) == EXPECTED
        assert (await again.archived_period("daily", "2026-12-04")).closed_seq == close.seq
    finally:
        await again.close()


async def test_read_only_reads_the_archive_and_opens_without_one(tmp_path: Path) -> None:
    writer = SqliteLog(tmp_path / "scoreboard.db")
    await writer.open()
    try:
        await writer.append(batch(rec(1)))
        await writer.write_archive(PERIOD, ROWS)
        reader = SqliteLog(tmp_path / "scoreboard.db", read_only=True)
        await reader.open()
        try:
            assert await reader.archive_page("daily", "2026-12-04", 0, 10) == ROWS
            assert [p.period for p in await reader.periods("daily", None, 10)] == ["2026-12-04"]
        finally:
            await reader.close()
    finally:
        await writer.close()
    assert lose_archive(tmp_path)
    reader = SqliteLog(tmp_path / "scoreboard.db", read_only=True)
    await reader.open()
    try:
        assert await reader.last_seq() == 1
        assert await reader.periods("daily", None, 10) == []
        assert await reader.archive_page("daily", "2026-12-04", 0, 10) == []
    finally:
        await reader.close()
    assert not lose_archive(tmp_path)  # read-only creates nothing


def version_5_log(path: Path) -> None:
    """A log as version 5 left it: the archive's tables in the log's own file."""
    steps = schema.migrations(schema.SQLITE)
    statements = [*(s for version in range(1, 6) for s in steps[version]),
                  *schema.archive_schema(schema.SQLITE),
                  "INSERT INTO periods VALUES ('daily', '2026-12-04', 0, 1, 1, 1, 1)",
                  "CREATE TABLE schema_version (version INTEGER PRIMARY KEY)",
                  "INSERT INTO schema_version VALUES (5)"]
    with closing(sqlite3.connect(path, isolation_level=None)) as old:
        for statement in statements:
            old.execute(statement)


async def test_a_version_5_log_leaves_its_archive_tables_behind(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    version_5_log(path)
    log = SqliteLog(path)
    await log.open()
    try:
        assert await log.periods("daily", None, 10) == []  # the archive file's: empty
        await log.write_archive(PERIOD, ROWS)
        assert await log.archive_page("daily", "2026-12-04", 0, 10) == ROWS
    finally:
        await log.close()
    with closing(sqlite3.connect(path)) as plain:
        tables = {r[0] for r in plain.execute("SELECT name FROM sqlite_master")}
    assert not tables & {"archive", "periods"}


async def test_rows_travel_as_one_json_array_across_encoding_steps() -> None:
    rows = [ArchiveRow(i, f"user{i}", 10_000 - i, i) for i in range(1, 10_001)]
    assert orjson.loads(await rows_json(rows)) == [list(r) for r in rows]
    assert await rows_json([]) == "[]"


@pytest.mark.postgres
async def test_a_postgres_follower_writes_no_archive(fresh_pg_dsn: str) -> None:
    writer = PostgresLog(fresh_pg_dsn, pool_size=1)
    await writer.open()
    try:
        follower = PostgresLog(fresh_pg_dsn, pool_size=1, follower=True)
        await follower.open()
        try:
            with pytest.raises(WriterFenced):
                await follower.write_archive(PERIOD, ROWS)
            assert await follower.periods("daily", None, 10) == []
        finally:
            await follower.close()
    finally:
        await writer.close()
