"""A SQLite connection that writes on a thread of its own, one trip per transaction.

The log's writing connection and the archive's each have one. A transaction is a
function run whole on that thread (`BEGIN IMMEDIATE`, the statements, `COMMIT`), so
the event loop hands it over once and hears back once. Through a queue of one call
per statement (aiosqlite) an append of five statements took ten handoffs between the
loop and the thread, each waiting for the interpreter lock, and wherever the loop was
busy (a rollover archiving a million users) the writer's commits paused for the sum
of them.

SQLite errors come back as they are (`sqlite3.Error`); the caller says what failed.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from scoreboard.storage.base import StoreUnavailable

T = TypeVar("T")


class ThreadedConnection:
    """One `sqlite3` connection, opened, used and closed by one thread of its own."""

    def __init__(self, path: Path, *, name: str, busy_timeout_ms: int) -> None:
        self.path = path
        self._name = name
        self._busy_timeout_ms = busy_timeout_ms
        self._conn: sqlite3.Connection | None = None
        self._thread: ThreadPoolExecutor | None = None
        self._lock = asyncio.Lock()  # one transaction at a time; `close` waits for it

    async def open(self, setup: Callable[[sqlite3.Connection], None]) -> None:
        """Connect on the thread and run `setup` (pragmas, schema) there; the
        connection is closed again if it fails."""
        def connect() -> sqlite3.Connection:
            # isolation_level=None: the sqlite3 module must not open transactions on
            # its own; every transaction here is explicit.
            conn = sqlite3.connect(self.path, isolation_level=None)
            try:
                conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
                setup(conn)
            except BaseException:
                conn.close()
                raise
            return conn

        self._thread = ThreadPoolExecutor(1, thread_name_prefix=self._name)
        try:
            self._conn = await self._run(connect)
        except BaseException:
            self._thread.shutdown(wait=False)
            self._thread = None
            raise

    async def close(self) -> None:
        async with self._lock:  # a transaction in flight finishes first
            conn, self._conn = self._conn, None
            thread, self._thread = self._thread, None
            if conn is not None and thread is not None:
                await asyncio.get_running_loop().run_in_executor(thread, conn.close)
            if thread is not None:
                thread.shutdown(wait=False)

    async def call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """`fn` on the thread, outside any transaction of ours (reads, pragmas)."""
        async with self._lock:
            return await self._run(lambda: fn(self._require()))

    async def transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """`work` in one `BEGIN IMMEDIATE` transaction, in one trip to the thread. The
        thread finishes it (commit, or rollback on an error) even when the caller is
        cancelled meanwhile."""
        def run() -> T:
            conn = self._require()
            # IMMEDIATE takes the write lock at BEGIN, so the work cannot fail half-way
            # with SQLITE_BUSY when it first writes.
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = work(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return result

        async with self._lock:
            return await self._run(run)

    async def _run(self, fn: Callable[[], T]) -> T:
        if self._thread is None:
            raise StoreUnavailable(f"{self.path} is not open")
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn)

    def _require(self) -> sqlite3.Connection:
        if self._conn is None:
            raise sqlite3.OperationalError(f"{self.path} is not open")
        return self._conn
