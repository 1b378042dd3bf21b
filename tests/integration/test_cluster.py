"""Several processes on one PostgreSQL database (SPEC §8): a writer, followers, a standby.

Real processes, real sockets on 127.0.0.1, the real database; each test bounded in time.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import jwt
import pytest
import websockets

from tests.integration.conftest import SECRET
from tests.integration.test_crash import free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@dataclass
class Proc:
    proc: asyncio.subprocess.Process
    port: int
    ws_port: int
    role: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def token(sub: str, **claims: Any) -> str:
    return jwt.encode({"sub": sub, "name": sub.title(), "exp": int(time.time()) + 3600,
                       **claims}, SECRET, algorithm="HS256")


def auth(sub: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(sub)}"}


@asynccontextmanager
async def cluster(tmp_path: Path, dsn: str) -> AsyncIterator[Callable[..., Awaitable[Proc]]]:
    """`await start(role)` starts one more process on the same database."""
    procs: list[Proc] = []

    async def start(role: str, *, port: int | None = None, **settings: str) -> Proc:
        """Forwarding is on by default: no `cluster.enabled` here."""
        port = port or free_port()
        ws_port = free_port()
        env = {**os.environ, "SCOREBOARD_JWT_SECRET": SECRET,
               "SCOREBOARD_LIMITS__USER_PER_MINUTE": "0",
               "SCOREBOARD_LIMITS__IP_PER_MINUTE": "0",
               "SCOREBOARD_CLUSTER__POLL_INTERVAL": "0.2",
               "SCOREBOARD_LIVE__BROADCAST_INTERVAL": "0.02",
               **{f"SCOREBOARD_{k.upper()}": v for k, v in settings.items()}}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(ROOT / "run.py"), "--role", role, "--http-port", str(port),
            "--ws-port", str(ws_port), "--data-dir", str(tmp_path / role / str(port)),
            "--database-url", dsn, cwd=ROOT, env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stderr is not None
        stderr = proc.stderr

        async def serving() -> None:
            while line := await stderr.readline():
                if b"Scoreboard serving" in line:
                    return
            raise AssertionError(f"the {role} exited before serving")

        p = Proc(proc, port, ws_port, role)
        procs.append(p)
        await asyncio.wait_for(serving(), 15)

        async def drain() -> None:  # keep the pipe from filling up
            while await stderr.read(65536):
                pass

        p.drain = asyncio.ensure_future(drain())  # type: ignore[attr-defined]
        return p

    try:
        yield start
    finally:
        for p in procs:
            if p.proc.returncode is None:
                p.proc.kill()
            await p.proc.wait()
            drain = getattr(p, "drain", None)
            if drain is not None:
                await asyncio.wait_for(drain, 5)


async def post(http: aiohttp.ClientSession, p: Proc, user: str, cid: str) -> tuple[int, Any]:
    async with http.post(f"{p.url}/api/v1/scores/actions",
                         json={"actionType": "COMPLETE_LEVEL", "clientActionId": cid},
                         headers=auth(user)) as r:
        return r.status, await r.json()


async def get(http: aiohttp.ClientSession, p: Proc, path: str) -> tuple[int, Any]:
    async with http.get(f"{p.url}{path}") as r:
        return r.status, await r.json()


async def is_writer(http: aiohttp.ClientSession, p: Proc) -> bool:
    _, ready = await get(http, p, "/ready")
    return bool(ready.get("cluster", {}).get("role") == "writer")


async def until(check: Callable[[], Awaitable[bool]], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, f"not within {within} s: {what}"
        await asyncio.sleep(0.05)  # polling a condition, with a deadline


async def test_follower_forwards_writes_and_reads_its_own(tmp_path: Path,
                                                          fresh_pg_dsn: str) -> None:
    async with cluster(tmp_path, fresh_pg_dsn) as start, aiohttp.ClientSession() as http:
        writer = await start("writer")
        follower = await start("follower")
        status, ready = await get(http, follower, "/ready")
        assert status == 200 and ready["cluster"]["role"] == "follower"
        results = await asyncio.gather(*(post(http, follower, f"u{i % 5}", f"c{i}")
                                         for i in range(40)))
        assert all(s == 200 for s, _ in results), results[:3]
        seqs = sorted(b["seq"] for _, b in results)
        assert seqs == list(range(1, 41))  # decided once each, by the writer
        # read-your-writes: the follower has applied each answered seq already
        _, me = await get(http, follower, "/api/v1/users/u0/score")
        assert me["score"] == 80
        _, top = await get(http, follower, f"/api/v1/leaderboard?minSeq={seqs[-1]}")
        assert sum(e["score"] for e in top["entries"]) == 400
        # a repeat through the writer is the same action, replayed
        status, again = await post(http, writer, "u0", "c0")
        first = next(b for _, b in results if b["userId"] == "u0" and b["seq"] == again["seq"])
        assert status == 200 and again["replayed"] is True and first["replayed"] is False
        # the writer's view agrees
        _, wtop = await get(http, writer, "/api/v1/leaderboard")
        assert wtop["entries"] == top["entries"]


async def test_every_admin_command_crosses_from_a_follower(tmp_path: Path,
                                                           fresh_pg_dsn: str) -> None:
    """Revoking a user's tokens through a follower takes effect on every process, and
    the forwarder goes on taking writes after it (it used to die on this command)."""
    admin = {"Authorization": f"Bearer {token('root', scope='scoreboard:admin')}"}
    old = {"Authorization": f"Bearer {token('alice', iat=int(time.time()) - 10)}"}
    async with cluster(tmp_path, fresh_pg_dsn) as start, aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=8)  # well below forward_timeout (10 s)
    ) as http:
        writer = await start("writer")
        follower = await start("follower")
        assert (await post(http, follower, "alice", "a1"))[0] == 200
        async with http.get(f"{follower.url}/api/v1/users/me/score", headers=old) as r:
            assert r.status == 200
        base = f"{follower.url}/api/v1/admin/users/alice"
        async with http.post(f"{base}/revoke-tokens", json={"reason": "stolen laptop"},
                             headers=admin) as r:
            body = await r.json()
            assert r.status == 200, body
        for p in (follower, writer):  # applied on the follower before it answered
            async with http.get(f"{p.url}/api/v1/users/me/score", headers=old) as r:
                assert r.status == 401, p.role
        async with http.post(f"{base}/freeze", json={"reason": "r"}, headers=admin) as r:
            assert r.status == 200, await r.json()
        status, after = await post(http, follower, "bob", "b1")
        assert status == 200 and after["seq"] == body["seq"] + 2
        status, ready = await get(http, follower, "/ready")
        assert status == 200 and ready["tasks"]["forwarder"] == "running"
        assert ready["cluster"]["writer"] == "connected"


async def test_a_follower_without_a_writer_to_forward_to_says_so_at_once(
    tmp_path: Path, fresh_pg_dsn: str
) -> None:
    """A writer that takes no forwarded writes (`cluster.enabled = false`): a follower
    answers each write at once with 503 and why, and is not ready; no internal address
    is shown to anyone."""
    async with cluster(tmp_path, fresh_pg_dsn) as start, aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=5)  # half of forward_timeout
    ) as http:
        await start("writer", cluster__enabled="false")
        follower = await start("follower")
        started = time.monotonic()
        async with http.post(f"{follower.url}/api/v1/scores/actions",
                             json={"actionType": "COMPLETE_LEVEL", "clientActionId": "c1"},
                             headers=auth("amy")) as r:
            body = await r.json()
            assert r.status == 503 and int(r.headers["Retry-After"]) >= 1
        assert time.monotonic() - started < 5
        assert body["error"]["code"] == "STORE_UNAVAILABLE"
        assert "no writer is reachable" in body["error"]["message"]
        status, ready = await get(http, follower, "/ready")
        assert status == 503 and ready["cluster"]["writer"] == "unreachable"
        assert "published" in ready["cluster"]["writerProblem"]
        _, health = await get(http, follower, "/health")
        for shown in (body, ready, health):
            assert "ws://" not in json.dumps(shown) and "127.0.0.1" not in json.dumps(shown)


async def test_follower_viewers_get_updates_and_a_restarted_follower_catches_up(
    tmp_path: Path, fresh_pg_dsn: str
) -> None:
    async with cluster(tmp_path, fresh_pg_dsn) as start, aiohttp.ClientSession() as http:
        writer = await start("writer")
        follower = await start("follower")
        uri = f"ws://127.0.0.1:{follower.ws_port}/api/v1/leaderboard/live?board=global&limit=5"
        async with websockets.connect(uri) as ws:
            assert json.loads(await ws.recv())["type"] == "CONNECTION_ACK"
            assert json.loads(await ws.recv())["data"]["top"] == []
            status, _ = await post(http, writer, "alice", "a1")  # straight to the writer
            assert status == 200
            update = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert update["type"] == "LEADERBOARD_UPDATE"
            assert update["data"]["top"][0]["userId"] == "alice"
        # a follower that goes away and comes back catches up on what it missed
        follower.proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(follower.proc.wait(), 15) == 0
        for i in range(30):
            assert (await post(http, writer, "bob", f"b{i}"))[0] == 200
        again = await start("follower", port=follower.port)
        _, board = await get(http, again, "/api/v1/leaderboard?minSeq=31")
        assert [(e["userId"], e["score"]) for e in board["entries"]] == [
            ("bob", 300), ("alice", 10)]
        _, ready = await get(http, again, "/ready")
        assert ready["lastSeq"] == 31 and ready["cluster"]["lagSeqs"] == 0


async def test_writer_killed_under_load_standby_takes_over(tmp_path: Path,
                                                           fresh_pg_dsn: str) -> None:
    acked: dict[tuple[str, str], int] = {}
    users = [f"p{i}" for i in range(8)]
    enough = asyncio.Event()
    stop = asyncio.Event()
    async with cluster(tmp_path, fresh_pg_dsn) as start, aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=15)
    ) as http:
        writer = await start("writer")
        standby = await start("standby")
        follower = await start("follower")

        async def worker(user: str, via: Proc) -> None:
            n = 0
            while not stop.is_set():
                n += 1
                try:
                    status, body = await post(http, via, user, f"{user}-{n}")
                except (TimeoutError, aiohttp.ClientError):
                    if via is writer:
                        return  # the writer is gone
                    continue
                if status == 200:
                    acked[(user, f"{user}-{n}")] = body["seq"]
                    if len(acked) >= 150:
                        enough.set()

        tasks = [asyncio.ensure_future(worker(u, writer if i % 2 else follower))
                 for i, u in enumerate(users)]
        await asyncio.wait_for(enough.wait(), 20)
        writer.proc.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        await writer.proc.wait()

        await until(lambda: is_writer(http, standby), 5, "the standby takes over")
        took = time.monotonic() - killed
        before = len(acked)
        # the follower keeps taking writes, now forwarded to the new writer
        await until(lambda: _more(acked, before + 20), 10, "writes through the follower")
        stop.set()
        await asyncio.gather(*tasks)
        assert took < 5
        seq = max(acked.values())
        _, board = await get(http, standby, f"/api/v1/leaderboard?limit=100&minSeq={seq}")
        _, ready = await get(http, standby, "/ready")
        # every acknowledged action is there, once: replays answer the original seq
        for (user, cid), s in list(acked.items())[:: max(1, len(acked) // 60)]:
            status, body = await post(http, follower, user, cid)
            assert status == 200 and body["replayed"] is True and body["seq"] == s
    total = sum(e["score"] for e in board["entries"])
    assert total == 10 * ready["lastSeq"]  # every record counted exactly once
    for user in users:
        mine = sum(1 for (u, _) in acked if u == user)
        entry = next(e for e in board["entries"] if e["userId"] == user)
        assert entry["score"] >= 10 * mine


async def _more(acked: dict[Any, int], n: int) -> bool:
    return len(acked) >= n


@pytest.mark.parametrize("idle", [False, True], ids=["asked-to-write", "idle"])
async def test_writer_whose_lock_session_is_killed_never_commits_again(
    tmp_path: Path, fresh_pg_dsn: str, idle: bool
) -> None:
    async with cluster(tmp_path, fresh_pg_dsn) as start, aiohttp.ClientSession() as http:
        writer = await start("writer")
        standby = await start("standby")
        assert (await post(http, writer, "alice", "a1"))[0] == 200
        conn = await asyncpg.connect(fresh_pg_dsn)
        try:
            killed = await conn.fetchval(
                "SELECT count(pg_terminate_backend(l.pid)) FROM pg_locks AS l"
                " WHERE l.locktype = 'advisory' AND l.granted AND l.database ="
                " (SELECT oid FROM pg_database WHERE datname = current_database())")
            assert killed == 1
            if idle:  # nothing is sent to it: its own lock check finds it fenced
                assert await asyncio.wait_for(writer.proc.wait(), 5) != 0
            await until(lambda: is_writer(http, standby), 5, "the standby takes over")
            if not idle:  # the old writer refuses, and ends with a non-zero status
                try:
                    status, body = await post(http, writer, "alice", "a2")
                    assert status == 503, body
                except aiohttp.ClientConnectionError:
                    pass  # its own lock check (every second) had it exit already
                assert await asyncio.wait_for(writer.proc.wait(), 10) != 0
            assert (await post(http, standby, "bob", "b1"))[0] == 200
            rows = await conn.fetch("SELECT user_id, client_action_id FROM action_log"
                                    " ORDER BY seq")
        finally:
            await conn.close()
    assert [(r["user_id"], r["client_action_id"]) for r in rows] == [
        ("alice", "a1"), ("bob", "b1")]


async def test_other_roles_refuse_sqlite(tmp_path: Path) -> None:
    async with AsyncExitStack():
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(ROOT / "run.py"), "--role", "follower", "--data-dir",
            str(tmp_path), cwd=ROOT, stderr=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
        )
        _, err = await asyncio.wait_for(proc.communicate(), 15)
    assert proc.returncode == 2 and b"needs PostgreSQL" in err
