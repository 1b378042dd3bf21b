"""Store outages (SPEC §7), a database that is unreachable at start, and a second writer
(SPEC §2.7), all against the real PostgreSQL (and SQLite where it applies).

An outage is real, never mocked: the test database stops accepting connections
(`ALTER DATABASE … ALLOW_CONNECTIONS false`) and the service's sessions are ended with
`pg_terminate_backend`, both from an admin session on the `postgres` database. Every
test that switches connections off switches them back on, whatever happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import jwt
import orjson
import pytest

from scoreboard.storage.verify import verify
from tests.conftest import run_isolated
from tests.integration.conftest import SECRET, Running, ServerFactory

ROOT = Path(__file__).resolve().parents[2]
ACTIONS = "/api/v1/scores/actions"
POINTS = 10  # COMPLETE_LEVEL in scoreboard/settings/rules.toml
RETRY_SECONDS = 1.0
WAIT_LIMIT = 20.0  # the safety net of every wait; tests assert their own tighter bounds
POSTGRES_ONLY = pytest.mark.parametrize(
    "database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)

Key = tuple[str, str]  # (userId, clientActionId)


# -- the database switch -------------------------------------------------------------------


class Database:
    """Turns one PostgreSQL database's connections off and on from an admin session."""

    def __init__(self, dsn: str) -> None:
        parts = urlsplit(dsn)
        self.dsn = dsn
        self.name = parts.path.lstrip("/")
        self.admin_dsn = urlunsplit(parts._replace(path="/postgres"))

    async def _execute(self, sql: str) -> str:
        conn = await asyncpg.connect(self.admin_dsn, timeout=5, command_timeout=15)
        try:
            return str(await conn.execute(sql))
        finally:
            await conn.close()

    async def refuse_connections(self) -> None:
        await self._execute(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS false')

    async def allow_connections(self) -> None:
        await self._execute(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS true')

    async def end_sessions(self) -> int:
        """End every session on the database and wait (up to 5 s each) until each is
        gone, so the writer's advisory lock went with it. Returns how many there were."""
        conn = await asyncpg.connect(self.admin_dsn, timeout=5, command_timeout=30)
        try:
            ended = await conn.fetchval(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000))"
                " FROM pg_stat_activity WHERE datname = $1",
                self.name,
            )
        finally:
            await conn.close()
        return int(ended)

    async def outage(self) -> int:
        """Refuse new sessions, then end the open ones: the store is gone at once."""
        await self.refuse_connections()
        return await self.end_sessions()


@pytest.fixture
def pg(fresh_pg_dsn: str) -> Iterator[Database]:
    """The test database's switch; connections are allowed again at teardown even when
    the test failed half-way (on a loop of its own: the test's loop may be broken)."""
    db = Database(fresh_pg_dsn)
    try:
        yield db
    finally:
        run_isolated(db.allow_connections)


# -- HTTP helpers ----------------------------------------------------------------------------


def token(sub: str) -> str:
    return jwt.encode({"sub": sub, "name": sub.title(), "exp": int(time.time()) + 3600},
                      SECRET, algorithm="HS256")


async def post_action(http: aiohttp.ClientSession, base: str, user: str, cid: str
                      ) -> tuple[int, Any, dict[str, str]]:
    async with http.post(f"{base}{ACTIONS}",
                         json={"actionType": "COMPLETE_LEVEL", "clientActionId": cid},
                         headers={"Authorization": f"Bearer {token(user)}"}) as r:
        return r.status, await r.json(), dict(r.headers)


def assert_store_unavailable(status: int, body: Any, headers: dict[str, str]) -> None:
    assert status == 503, (status, body)
    assert body["error"]["code"] == "STORE_UNAVAILABLE", body
    assert int(headers["Retry-After"]) >= 1, headers


async def wait_ready(server: Running, expected: int) -> Any:
    """Poll /ready until it answers `expected` (no event tells a test when it flips)."""
    seen: tuple[int, Any] = (0, None)
    try:
        async with asyncio.timeout(WAIT_LIMIT):
            while True:
                seen = await server.get("/ready")
                if seen[0] == expected:
                    return seen[1]
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"/ready still answers {seen} after {WAIT_LIMIT} s") from None


async def log_rows(dsn: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn, timeout=5, command_timeout=15)
    try:
        return list(await conn.fetch(
            "SELECT seq, user_id, client_action_id, delta FROM action_log ORDER BY seq"
        ))
    finally:
        await conn.close()


# -- subprocess helpers ----------------------------------------------------------------------


def log_time(child: ServerProcess, needle: str) -> float:
    """When the child logged its first JSON line containing `needle`."""
    for text in child.lines:
        if text.startswith("{") and needle in text:
            return float(orjson.loads(text)["ts"])
    raise AssertionError(f"no log line with {needle!r}:\n{child.stderr}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """A `run.py` child; its stderr is read as it comes, so a test can wait for a line."""

    def __init__(self, proc: asyncio.subprocess.Process, http_port: int) -> None:
        self.proc = proc
        self.url = f"http://127.0.0.1:{http_port}"
        self.lines: list[str] = []
        self._waiters: list[tuple[str, asyncio.Future[str]]] = []
        self.reader = asyncio.create_task(self._read(), name="stderr-reader")

    @property
    def stderr(self) -> str:
        return "\n".join(self.lines)

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        while line := await self.proc.stderr.readline():
            text = line.decode(errors="replace").rstrip()
            self.lines.append(text)
            for needle, fut in self._waiters:
                if needle in text and not fut.done():
                    fut.set_result(text)
        for needle, fut in self._waiters:
            if not fut.done():
                fut.set_exception(AssertionError(
                    f"run.py closed stderr before printing {needle!r}:\n{self.stderr}"
                ))

    async def wait_for_line(self, needle: str) -> str:
        for text in self.lines:
            if needle in text:
                return text
        fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiters.append((needle, fut))
        if self.reader.done():
            fut.set_exception(AssertionError(f"run.py has exited:\n{self.stderr}"))
        try:
            return await asyncio.wait_for(fut, WAIT_LIMIT)
        except TimeoutError:
            raise AssertionError(f"no {needle!r} within {WAIT_LIMIT} s:\n{self.stderr}"
                                 ) from None

    async def exit_code(self) -> int:
        """Wait for the process to end (and its stderr to be read to the end)."""
        try:
            code = await asyncio.wait_for(self.proc.wait(), WAIT_LIMIT)
        except TimeoutError:
            raise AssertionError(f"run.py still running after {WAIT_LIMIT} s:\n{self.stderr}"
                                 ) from None
        await asyncio.wait_for(self.reader, WAIT_LIMIT)
        return code

    async def terminate(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return await self.exit_code()


@asynccontextmanager
async def run_py(data_dir: Path, database_url: str, *args: str
                 ) -> AsyncIterator[ServerProcess]:
    """`python run.py serve` as a child process; killed on the way out if still running."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCOREBOARD_")}
    env["SCOREBOARD_JWT_SECRET"] = SECRET
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "run.py"), "serve",
        "--http-port", str(port), "--ws-port", str(free_port()),
        "--data-dir", str(data_dir), "--database-url", database_url,
        "--set", "limits.user_per_minute=0", "--set", "limits.ip_per_minute=0",
        "--set", "abuse.actions_per_minute=0", "--set", "abuse.points_per_minute=0",
        *args,
        cwd=ROOT, env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    child = ServerProcess(proc, port)
    try:
        yield child
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(child.reader, 10)


# -- 1. outage while serving -----------------------------------------------------------------


@pytest.mark.slow  # a long outage: seconds of refused writes, then recovery
@POSTGRES_ONLY
async def test_outage_refuses_writes_serves_reads_and_recovers_by_itself(
    start_server: ServerFactory, pg: Database
) -> None:
    server = await start_server(**{"writer.retry_seconds": RETRY_SECONDS})
    acked: dict[Key, int] = {}
    for i in range(6):
        user = ("alice", "bob")[i % 2]
        status, body, _ = await post_action(server.http, server.url, user, f"{user}-{i}")
        assert status == 200, body
        acked[(user, f"{user}-{i}")] = body["seq"]
    _, board_before = await server.get("/api/v1/leaderboard?limit=100")
    _, alice_before = await server.get("/api/v1/users/alice/score")
    await wait_ready(server, 200)

    loop = asyncio.get_running_loop()
    refused: list[Key] = []
    try:
        assert await pg.outage() >= 2  # the writer's lock session and a pooled reader

        # Writes wait (retrying for writer.retry_seconds), then a clean 503 — and so does
        # the next one: a write after a failed one waits just the same.
        for i in range(2):
            key = ("alice", f"alice-outage-{i}")
            started = loop.time()
            status, body, headers = await post_action(server.http, server.url, *key)
            waited = loop.time() - started
            assert_store_unavailable(status, body, headers)
            assert RETRY_SECONDS * 0.8 <= waited <= RETRY_SECONDS + 5.0, waited
            refused.append(key)

        # Reads keep serving the last committed state.
        status, board = await server.get("/api/v1/leaderboard?limit=100")
        assert status == 200
        assert board["entries"] == board_before["entries"]
        assert board["version"] == board_before["version"]
        assert await server.get("/api/v1/users/alice/score") == (200, alice_before)
        status, around = await server.get("/api/v1/leaderboard/around/bob?radius=1")
        assert status == 200 and {e["userId"] for e in around["entries"]} == {"alice", "bob"}

        not_ready = await wait_ready(server, 503)
        assert not_ready["status"] == "not ready"
        assert not_ready["lastSeq"] == max(acked.values())
    finally:
        await pg.allow_connections()

    # The service reconnects by itself: no restart.
    await wait_ready(server, 200)
    status, body, _ = await post_action(server.http, server.url, "carol", "carol-1")
    assert status == 200 and body["replayed"] is False, body
    assert body["seq"] == max(acked.values()) + 1  # the refused writes left no trace
    acked[("carol", "carol-1")] = body["seq"]
    for key in refused:  # they never reached the log: a retry applies them, once
        status, body, _ = await post_action(server.http, server.url, *key)
        assert status == 200 and body["replayed"] is False, body
        acked[key] = body["seq"]
    for key, seq in acked.items():  # and a second copy of anything is a replay
        status, body, _ = await post_action(server.http, server.url, *key)
        assert status == 200 and body["replayed"] is True and body["seq"] == seq, body

    rows = await log_rows(pg.dsn)
    assert {(r["user_id"], r["client_action_id"]): r["seq"] for r in rows} == acked
    assert [r["seq"] for r in rows] == list(range(1, len(acked) + 1))
    _, board_after = await server.get("/api/v1/leaderboard?limit=100")

    await server.stop()
    assert await verify(server.settings) == 0
    again = await start_server(**{"writer.retry_seconds": RETRY_SECONDS})
    _, board_restarted = await again.get("/api/v1/leaderboard?limit=100")
    assert board_restarted["entries"] == board_after["entries"]


@pytest.mark.slow  # a long outage under load
@POSTGRES_ONLY
async def test_outage_under_concurrent_writes_loses_and_doubles_nothing(
    start_server: ServerFactory, pg: Database
) -> None:
    server = await start_server(**{"writer.retry_seconds": RETRY_SECONDS,
                                   "abuse.actions_per_minute": 0,
                                   "abuse.points_per_minute": 0})
    users = [f"racer{i}" for i in range(8)]
    acked: dict[Key, int] = {}
    refused: list[Key] = []
    phase = {"name": "before"}
    counts = {"before": 0, "outage": 0, "after": 0}
    enough = {name: asyncio.Event() for name in counts}
    wanted = {"before": 80, "outage": 16, "after": 80}
    stop = asyncio.Event()

    def count() -> None:
        name = phase["name"]
        counts[name] += 1
        if counts[name] >= wanted[name]:
            enough[name].set()

    async def writer(user: str) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            key = (user, f"{user}-{n}")
            status, body, headers = await post_action(server.http, server.url, *key)
            if status == 200:
                assert body["replayed"] is False, body
                acked[key] = body["seq"]
                if phase["name"] != "outage":
                    count()
            else:
                assert_store_unavailable(status, body, headers)
                refused.append(key)
                if phase["name"] == "outage":
                    count()

    tasks = [asyncio.create_task(writer(u), name=f"writer-{u}") for u in users]
    try:
        await asyncio.wait_for(enough["before"].wait(), 20)
        phase["name"] = "outage"
        try:
            await pg.outage()  # 8 writers have requests in flight right now
            await asyncio.wait_for(enough["outage"].wait(), 20)
            status, _ = await server.get("/api/v1/leaderboard?limit=100")
            assert status == 200
            await wait_ready(server, 503)
        finally:
            await pg.allow_connections()
        phase["name"] = "after"
        await asyncio.wait_for(enough["after"].wait(), 20)
    finally:
        stop.set()
        done, _ = await asyncio.wait(tasks, timeout=20)
        assert len(done) == len(tasks)
    for t in tasks:
        t.result()  # a writer's failed assertion fails the test here

    assert counts["outage"] >= wanted["outage"] and refused
    # Each refused key, retried now, is applied once or (when the commit the outage cut
    # off had in fact landed) replayed with its original result.
    retried: dict[Key, int] = {}
    for key in refused:
        status, body, _ = await post_action(server.http, server.url, *key)
        assert status == 200, body
        retried[key] = body["seq"]
    for key, seq in acked.items():
        status, body, _ = await post_action(server.http, server.url, *key)
        assert status == 200 and body["replayed"] is True and body["seq"] == seq, body

    rows = await log_rows(pg.dsn)
    in_log = {(r["user_id"], r["client_action_id"]): r["seq"] for r in rows}
    assert len(in_log) == len(rows)
    assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))
    for key, seq in acked.items():
        assert in_log.get(key) == seq, key
    for key, seq in retried.items():
        assert in_log.get(key) == seq, key
    # Every request was answered, so nothing else can be in the log.
    assert set(in_log) == set(acked) | set(retried)
    for user in users:
        mine = sum(1 for u, _ in in_log if u == user)
        status, score = await server.get(f"/api/v1/users/{user}/score")
        assert status == 200 and score["score"] == POINTS * mine, (user, score, mine)

    await server.stop()
    assert await verify(server.settings) == 0
    again = await start_server(**{"writer.retry_seconds": RETRY_SECONDS})
    _, ready = await again.get("/ready")
    assert ready["lastSeq"] == len(rows)
    for user in users:
        mine = sum(1 for u, _ in in_log if u == user)
        _, score = await again.get(f"/api/v1/users/{user}/score")
        assert score["score"] == POINTS * mine


# -- 2. the database is unreachable at start -------------------------------------------------


@pytest.mark.slow
async def test_start_with_postgres_on_a_closed_port_exits_1_naming_the_problem(
    tmp_path: Path,
) -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/scoreboard"
    started = time.monotonic()
    async with run_py(tmp_path, url, "--set", "server.connect_timeout=2") as child:
        code = await child.exit_code()
    took = time.monotonic() - started
    assert code == 1, child.stderr
    assert "cannot start: the database is unreachable after 2 s" in child.stderr
    assert "Connect call failed" in child.stderr or "refused" in child.stderr.lower()
    assert took < 15.0, took
    # It kept trying for the whole connect_timeout (from its first failed attempt to
    # giving up), not for a moment less, nor much more.
    tried_for = log_time(child, "cannot start") - log_time(child, "database unreachable")
    assert 1.9 <= tried_for <= 3.5, tried_for


@pytest.mark.slow
@pytest.mark.postgres
async def test_start_while_postgres_refuses_connections_exits_1_naming_the_problem(
    tmp_path: Path, pg: Database
) -> None:
    try:
        await pg.refuse_connections()
        started = time.monotonic()
        async with run_py(tmp_path, pg.dsn, "--set", "server.connect_timeout=2") as child:
            code = await child.exit_code()
        took = time.monotonic() - started
    finally:
        await pg.allow_connections()
    assert code == 1, child.stderr
    assert "cannot start: the database is unreachable after 2 s" in child.stderr
    assert f'database "{pg.name}" is not currently accepting connections' in child.stderr
    assert took < 15.0, took
    tried_for = log_time(child, "cannot start") - log_time(child, "database unreachable")
    assert 1.9 <= tried_for <= 3.5, tried_for


@pytest.mark.slow
@pytest.mark.postgres
async def test_start_waits_for_postgres_that_comes_back_within_connect_timeout(
    tmp_path: Path, pg: Database
) -> None:
    try:
        await pg.refuse_connections()
        async with run_py(tmp_path, pg.dsn, "--set", "server.connect_timeout=30") as child:
            await child.wait_for_line("database unreachable, retrying")
            await pg.allow_connections()
            await child.wait_for_line("Scoreboard serving")
            async with aiohttp.ClientSession() as http:
                status, body, _ = await post_action(http, child.url, "dora", "dora-1")
                assert status == 200 and body["seq"] == 1, body
                async with http.get(f"{child.url}/ready") as r:
                    assert r.status == 200
            assert await child.terminate() == 0, child.stderr
    finally:
        await pg.allow_connections()


# -- 3. a second writer on the same database -------------------------------------------------


@pytest.mark.slow
async def test_second_writer_refuses_to_start_and_the_first_keeps_serving(
    tmp_path: Path, database_url: str, start_server: ServerFactory
) -> None:
    first = await start_server()
    status, body, _ = await post_action(first.http, first.url, "erin", "erin-1")
    assert status == 200, body

    started = time.monotonic()
    async with run_py(tmp_path / "second", database_url,
                      "--set", "server.connect_timeout=30") as second:
        code = await second.exit_code()
    took = time.monotonic() - started
    assert code == 1, second.stderr
    assert took < 15.0, took  # refused at once: a held lock is not an outage to wait out
    assert "cannot start: another process" in second.stderr
    assert "is already the writer" in second.stderr
    assert urlsplit(database_url).path.lstrip("/") in second.stderr  # names the database
    assert "Scoreboard serving" not in second.stderr

    status, body, _ = await post_action(first.http, first.url, "erin", "erin-2")
    assert status == 200 and body["seq"] == 2 and body["newScore"] == 2 * POINTS, body
    await wait_ready(first, 200)
    status, score = await first.get("/api/v1/users/erin/score")
    assert status == 200 and score["score"] == 2 * POINTS
