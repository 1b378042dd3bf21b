"""kill -9 under concurrent load: every acknowledged action is there exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import jwt
import pytest

from tests.integration.conftest import SECRET

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def server_process(data_dir: Path, database_url: str, port: int
                         ) -> AsyncIterator[asyncio.subprocess.Process]:
    env = {**os.environ, "SCOREBOARD_JWT_SECRET": SECRET,
           "SCOREBOARD_LIMITS__USER_PER_MINUTE": "0", "SCOREBOARD_LIMITS__IP_PER_MINUTE": "0",
           # Several groups in flight when the kill lands: decided, committing, waiting.
           "SCOREBOARD_WRITER__PIPELINE_DEPTH": "4"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "run.py"), "--http-port", str(port),
        "--ws-port", str(free_port()), "--data-dir", str(data_dir),
        "--database-url", database_url,
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    try:
        async def serving() -> None:
            assert proc.stderr is not None
            while line := await proc.stderr.readline():
                if b"Scoreboard serving" in line:
                    return
            raise AssertionError("the server exited before serving")

        await asyncio.wait_for(serving(), 30)
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


def token(sub: str) -> str:
    return jwt.encode({"sub": sub, "exp": int(time.time()) + 3600}, SECRET, algorithm="HS256")


async def test_kill_9_loses_no_acknowledged_action(tmp_path: Path, database_url: str) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/api/v1/scores/actions"
    acked: dict[tuple[str, str], int] = {}
    users = [f"player{i}" for i in range(16)]
    headers = {u: {"Authorization": f"Bearer {token(u)}"} for u in users}
    enough = asyncio.Event()

    async def worker(session: aiohttp.ClientSession, user: str) -> None:
        n = 0
        while True:
            n += 1
            cid = f"{user}-{n}"
            try:
                async with session.post(url, json={"actionType": "COMPLETE_LEVEL",
                                                   "clientActionId": cid},
                                        headers=headers[user]) as r:
                    if r.status == 200:
                        acked[(user, cid)] = (await r.json())["seq"]
                        if len(acked) >= 400:
                            enough.set()
            except (TimeoutError, aiohttp.ClientError):
                return  # the server is gone

    async with server_process(tmp_path, database_url, port) as proc:
        async with aiohttp.ClientSession() as session:
            tasks = [asyncio.create_task(worker(session, u)) for u in users]
            await asyncio.wait_for(enough.wait(), 60)
            proc.send_signal(signal.SIGKILL)  # requests are in flight right now
            await proc.wait()
            await asyncio.gather(*tasks)
    assert len(acked) >= 400

    # Replays on a restarted server prove each acknowledged action is still there, once.
    port3 = free_port()
    async with server_process(tmp_path, database_url, port3), aiohttp.ClientSession() as session:
        base = f"http://127.0.0.1:{port3}"
        for (user, cid), seq in acked.items():
            async with session.post(f"{base}/api/v1/scores/actions",
                                    json={"actionType": "COMPLETE_LEVEL", "clientActionId": cid},
                                    headers=headers[user]) as r:
                body = await r.json()
                assert r.status == 200 and body["replayed"] is True and body["seq"] == seq
        async with session.get(f"{base}/api/v1/leaderboard?limit=100") as r:
            board = await r.json()
        async with session.get(f"{base}/ready") as r:
            last_seq = (await r.json())["lastSeq"]
    total = sum(e["score"] for e in board["entries"])
    assert total == 10 * last_seq  # every record in the log counted exactly once
    for user in users:
        mine = sum(1 for (u, _) in acked if u == user)
        entry = next((e for e in board["entries"] if e["userId"] == user), None)
        assert entry is not None and entry["score"] >= 10 * mine
    verify = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "run.py"), "verify", "--data-dir", str(tmp_path),
        "--database-url", database_url, cwd=ROOT, stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "SCOREBOARD_JWT_SECRET": SECRET},
    )
    out, _ = await asyncio.wait_for(verify.communicate(), 60)
    assert verify.returncode == 0 and out.startswith(b"OK"), out
