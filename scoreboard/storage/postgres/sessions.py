"""The PostgreSQL sessions behind `PostgresLog`: the writer's and a pool for reads.

Writes go through one dedicated session that also holds the session-level advisory
lock making this process the only writer. Writing on the lock's own session is the
fence: if that session dies the lock goes with it, and no write can commit until a new
session has taken the lock again, so a process that lost the lock to another writer
can never slip a write in. Reads use a small pool. Both retry on sessions found dead,
which is all a restarted server or an operator's `pg_terminate_backend` leaves behind.

Connections set `synchronous_commit=on` explicitly, so a committed write is durable.
Session-level advisory locks need a session: do not put a transaction-pooling
PgBouncer between this and the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg

from scoreboard.storage.base import StoreUnavailable, WriterFenced, WriterLockHeld

# A fixed key, so every scoreboard process pointed at the same database competes for
# the same lock (advisory locks are per database).
WRITER_LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"scoreboard-writer").digest()[:8], "big", signed=True
)
_LOCK_HOLDER = """SELECT l.pid, a.application_name, host(a.client_addr) AS client_addr
    FROM pg_locks AS l LEFT JOIN pg_stat_activity AS a ON a.pid = l.pid
    WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
        AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
        AND l.classid = $1 AND l.objid = $2"""

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
UNAVAILABLE = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
    TimeoutError,
)

T = TypeVar("T")
Run = Callable[[asyncpg.Connection], Awaitable[T]]


class Sessions:
    """The lock-holding writer session and the read pool of one `PostgresLog`."""

    def __init__(
        self,
        dsn: str,
        *,
        pool_size: int,
        command_timeout: float,
        connect_timeout: float,
        application_name: str,
    ) -> None:
        if pool_size < 1:
            raise ValueError("pool_size must be >= 1")
        self._dsn = dsn
        self._pool_size = pool_size
        self._command_timeout = command_timeout
        self._connect_timeout = connect_timeout
        self._server_settings = {
            "synchronous_commit": "on",
            "application_name": application_name,
        }
        self._pool: asyncpg.Pool | None = None  # None while closed
        self._writer: asyncpg.Connection | None = None
        self._writer_pid: int | None = None  # backend pid of the last lock-holding session
        self._write_lock = asyncio.Lock()
        # Set for a follower (never held the lock) and once another process is seen
        # holding it after ours was lost: writes are refused from then on.
        self._fenced: str | None = None

    @property
    def is_open(self) -> bool:
        return self._pool is not None

    async def open(self, setup: Run[None]) -> None:
        """Connect, take the writer lock, run `setup` on the lock's session (migrations:
        never two at once), then open the pool."""
        writer = await self._connect()
        try:
            await self._take_lock(writer, first=True)
            await setup(writer)
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
            if isinstance(exc, UNAVAILABLE):
                raise StoreUnavailable(f"cannot open the PostgreSQL log: {exc!r}") from exc
            raise
        self._writer, self._writer_pid, self._pool = writer, writer.get_server_pid(), pool

    async def open_reader(self) -> None:
        """Open only the read pool: a follower never takes the lock and never writes."""
        try:
            self._pool = await asyncpg.create_pool(
                self._dsn, min_size=1, max_size=self._pool_size,
                timeout=self._connect_timeout, command_timeout=self._command_timeout,
                server_settings=self._server_settings,
            )
        except UNAVAILABLE as exc:
            raise StoreUnavailable(f"cannot open the PostgreSQL log: {exc!r}") from exc
        self._fenced = "this process is a follower: it does not hold the writer lock"

    async def wait_for_lock(self, setup: Run[None], *, poll: float = 2.0) -> None:
        """Wait (blocking on the server, re-armed every `poll` seconds) until this process
        holds the writer lock, then make that session the write session."""
        conn = await self._connect()
        try:
            while True:
                try:
                    async with conn.transaction():
                        await conn.execute("SELECT set_config('lock_timeout', $1, true)",
                                           f"{int(poll * 1000)}ms")
                        await conn.execute("SELECT pg_advisory_lock($1)", WRITER_LOCK_KEY)
                    break
                except asyncpg.LockNotAvailableError:
                    continue
            await setup(conn)
        except BaseException as exc:
            conn.terminate()
            if isinstance(exc, UNAVAILABLE):
                raise StoreUnavailable(f"waiting for the writer lock failed: {exc!r}") from exc
            raise
        self._writer, self._writer_pid, self._fenced = conn, conn.get_server_pid(), None

    async def connect(self) -> asyncpg.Connection:
        """A dedicated session outside the pool (e.g. for LISTEN)."""
        return await self._connect()

    async def close(self) -> None:
        async with self._write_lock:  # let a write in flight finish first
            pool, self._pool = self._pool, None
            writer, self._writer, self._writer_pid = self._writer, None, None
            if writer is not None:
                await _close_quietly(writer, self._connect_timeout)
            if pool is not None:
                try:
                    await asyncio.wait_for(pool.close(), self._connect_timeout)
                except (TimeoutError, *UNAVAILABLE):
                    pool.terminate()

    async def write(self, run: Run[T]) -> T:
        """Run a write on the lock-holding session, one at a time.

        One retry after a lost session: `run` must be safe to repeat (an append that did
        commit finds itself already there)."""
        async with self._write_lock:
            if self._fenced is not None:
                raise WriterFenced(self._fenced)
            for attempt in (1, 2):
                conn = await self._writer_session()
                try:
                    return await run(conn)
                except UNAVAILABLE as exc:
                    lost = is_broken(conn, exc)
                    if lost or isinstance(exc, TimeoutError):
                        # After a timeout the statement may still run on the server;
                        # start over on a fresh session rather than reuse this one.
                        self._writer = None
                        conn.terminate()
                    if not lost or attempt == 2:
                        raise StoreUnavailable(f"append failed: {exc!r}") from exc
        raise AssertionError("unreachable")

    async def write_beside(self, run: Run[T]) -> T:
        """Run a write on a pooled session, not the lock's: for what is derived from the
        log (archives), which appends must not queue behind. Refused like `write` once
        this process is known to be fenced, or is a follower; `run` must be safe to
        repeat (a retry on a session found dead)."""
        if self._fenced is not None:
            raise WriterFenced(self._fenced)
        return await self.read(run)

    async def read(self, run: Run[T], *, may_retry: Callable[[], bool] = lambda: True) -> T:
        """Run a read on a pooled connection, retrying on connections found dead.

        After the server drops its sessions every idle pooled connection may be dead
        without the client knowing yet, hence up to one attempt per connection, as long
        as `may_retry()` says so (not once a stream has handed rows over).
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
                    except UNAVAILABLE as exc:
                        # Checked before release: a released proxy answers nothing.
                        broken = is_broken(conn, exc)
                        if broken:
                            # The pool replaces it; never reuse it. (Already detached
                            # when the pool saw it die.)
                            with contextlib.suppress(asyncpg.InterfaceError):
                                conn.terminate()
                        raise
            except UNAVAILABLE as exc:
                # Only a session that died under us is worth another try; when a new
                # connection cannot be made, another attempt would just wait again.
                if not broken or attempt == self._pool_size or not may_retry():
                    raise StoreUnavailable(f"read failed: {exc!r}") from exc
        raise AssertionError("unreachable")

    # -- the writer session and its lock ------------------------------------------------

    async def _connect(self) -> asyncpg.Connection:
        try:
            return await asyncpg.connect(
                self._dsn,
                timeout=self._connect_timeout,
                command_timeout=self._command_timeout,
                server_settings=self._server_settings,
            )
        except UNAVAILABLE as exc:
            raise StoreUnavailable(f"cannot connect to PostgreSQL: {exc!r}") from exc

    async def _writer_session(self) -> asyncpg.Connection:
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
            if isinstance(exc, UNAVAILABLE):
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
        self._fenced = (
            f"lost the writer lock on database {database!r} and another process took it "
            f"({who}); this process must stop writing"
        )
        raise WriterFenced(self._fenced)


def is_broken(conn: asyncpg.Connection, exc: BaseException) -> bool:
    if isinstance(exc, _BROKEN):
        return True
    try:
        return bool(conn.is_closed())
    except asyncpg.InterfaceError:
        return True  # the pool already took back a connection lost under the query


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
    except UNAVAILABLE:
        conn.terminate()
