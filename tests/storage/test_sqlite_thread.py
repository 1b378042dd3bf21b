"""A SQLite connection on a thread of its own (the log's writer, the archive's): a
transaction is one call, run whole on the thread; a caller that goes away meanwhile
leaves it committed or rolled back, never half done, and `close` waits for it. The
thread is held at a point with an event, never a sleep."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from contextlib import closing
from pathlib import Path

import pytest

from scoreboard.storage.base import StoreUnavailable
from scoreboard.storage.sqlite_thread import ThreadedConnection


def make_table(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY)")


def keys(conn: sqlite3.Connection) -> list[int]:
    return [k for (k,) in conn.execute("SELECT k FROM t ORDER BY k")]


async def opened(path: Path) -> ThreadedConnection:
    conn = ThreadedConnection(path, name="test", busy_timeout_ms=1000)
    await conn.open(make_table)
    return conn


async def test_a_transaction_commits_in_one_call_and_an_error_rolls_it_back(
        tmp_path: Path) -> None:
    conn = await opened(tmp_path / "x.db")
    try:
        await conn.transaction(lambda c: c.executemany("INSERT INTO t VALUES (?)",
                                                       [(1,), (2,)]))

        def half(c: sqlite3.Connection) -> None:
            c.execute("INSERT INTO t VALUES (3)")
            c.execute("INSERT INTO t VALUES (1)")  # taken: the 3 goes too

        with pytest.raises(sqlite3.IntegrityError):
            await conn.transaction(half)
        assert await conn.call(keys) == [1, 2]
        assert not await conn.call(lambda c: c.in_transaction)
    finally:
        await conn.close()


async def test_a_cancelled_caller_leaves_the_transaction_whole_and_close_waits(
        tmp_path: Path) -> None:
    conn = await opened(tmp_path / "x.db")
    inside, go_on = threading.Event(), threading.Event()

    def slow(c: sqlite3.Connection) -> None:
        c.execute("INSERT INTO t VALUES (1)")
        inside.set()
        go_on.wait()
        c.execute("INSERT INTO t VALUES (2)")

    task = asyncio.ensure_future(conn.transaction(slow))
    await asyncio.to_thread(inside.wait)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    shutting = asyncio.ensure_future(conn.close())
    go_on.set()
    await shutting  # after the transaction: both rows committed
    with closing(sqlite3.connect(tmp_path / "x.db")) as plain:
        assert keys(plain) == [1, 2]


async def test_a_closed_connection_refuses_work(tmp_path: Path) -> None:
    conn = await opened(tmp_path / "x.db")
    await conn.close()
    with pytest.raises(StoreUnavailable):
        await conn.transaction(keys)
    await conn.close()  # twice is fine


async def test_a_failed_setup_leaves_nothing_open(tmp_path: Path) -> None:
    conn = ThreadedConnection(tmp_path / "x.db", name="test", busy_timeout_ms=1000)

    def refuse(c: sqlite3.Connection) -> None:
        raise sqlite3.OperationalError("refused")

    with pytest.raises(sqlite3.OperationalError):
        await conn.open(refuse)
    with pytest.raises(StoreUnavailable):
        await conn.call(keys)
