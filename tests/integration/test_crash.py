"""kill -9 under concurrent load: every acknowledged action is there exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

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
async def server_process(data_dir: Path, database_url: str, port: int,
                         extra_env: dict[str, str] | None = None,
                         startup: list[bytes] | None = None,
                         ) -> AsyncIterator[asyncio.subprocess.Process]:
    """`startup` gets the lines the server logged until it served."""
    env = {**os.environ, "SCOREBOARD_JWT_SECRET": SECRET,
           "SCOREBOARD_LIMITS__USER_PER_MINUTE": "0", "SCOREBOARD_LIMITS__IP_PER_MINUTE": "0",
           # Several groups in flight when the kill lands: decided, committing, waiting.
           "SCOREBOARD_WRITER__PIPELINE_DEPTH": "4",
           **(extra_env or {})}
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
                if startup is not None:
                    startup.append(line)
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


def bearer(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(user)}"}


async def act_until_gone(session: aiohttp.ClientSession, url: str, user: str,
                         acked: dict[tuple[str, str], int],
                         on_ack: Callable[[], None] = lambda: None) -> None:
    """Post actions one after another until the server goes away; `acked` gets the seq
    of each one answered 200."""
    headers = bearer(user)
    n = 0
    while True:
        n += 1
        cid = f"{user}-{n}"
        try:
            async with session.post(url, json={"actionType": "COMPLETE_LEVEL",
                                               "clientActionId": cid}, headers=headers) as r:
                if r.status == 200:
                    acked[(user, cid)] = (await r.json())["seq"]
                    on_ack()
        except (TimeoutError, aiohttp.ClientError):
            return  # the server is gone


async def replay_all(session: aiohttp.ClientSession, base: str,
                     acked: dict[tuple[str, str], int]) -> tuple[dict[str, Any], int]:
    """Every acknowledged action again: each must be a replay of the same seq. Returns
    the top 100 and the last seq."""
    for (user, cid), seq in acked.items():
        async with session.post(f"{base}/api/v1/scores/actions",
                                json={"actionType": "COMPLETE_LEVEL", "clientActionId": cid},
                                headers=bearer(user)) as r:
            body = await r.json()
            assert r.status == 200 and body["replayed"] is True and body["seq"] == seq
    async with session.get(f"{base}/api/v1/leaderboard?limit=100") as r:
        board = await r.json()
    async with session.get(f"{base}/ready") as r:
        return board, (await r.json())["lastSeq"]


async def run_verify(data_dir: Path, database_url: str) -> bytes:
    """`run.py verify` must pass; its output."""
    verify = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "run.py"), "verify", "--data-dir", str(data_dir),
        "--database-url", database_url, cwd=ROOT, stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "SCOREBOARD_JWT_SECRET": SECRET},
    )
    out, _ = await asyncio.wait_for(verify.communicate(), 60)
    assert verify.returncode == 0 and out.startswith(b"OK"), out
    return out


async def test_kill_9_loses_no_acknowledged_action(tmp_path: Path, database_url: str) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/api/v1/scores/actions"
    acked: dict[tuple[str, str], int] = {}
    users = [f"player{i}" for i in range(16)]
    enough = asyncio.Event()

    def counted() -> None:
        if len(acked) >= 400:
            enough.set()

    async with server_process(tmp_path, database_url, port) as proc:
        async with aiohttp.ClientSession() as session:
            tasks = [asyncio.create_task(act_until_gone(session, url, u, acked, counted))
                     for u in users]
            await asyncio.wait_for(enough.wait(), 60)
            proc.send_signal(signal.SIGKILL)  # requests are in flight right now
            await proc.wait()
            await asyncio.gather(*tasks)
    assert len(acked) >= 400

    # Replays on a restarted server prove each acknowledged action is still there, once.
    port3 = free_port()
    async with server_process(tmp_path, database_url, port3), aiohttp.ClientSession() as session:
        board, last_seq = await replay_all(session, f"http://127.0.0.1:{port3}", acked)
    total = sum(e["score"] for e in board["entries"])
    assert total == 10 * last_seq  # every record in the log counted exactly once
    for user in users:
        mine = sum(1 for (u, _) in acked if u == user)
        entry = next((e for e in board["entries"] if e["userId"] == user), None)
        assert entry is not None and entry["score"] >= 10 * mine
    await run_verify(tmp_path, database_url)


async def test_kill_9_while_a_snapshot_is_written_recovers_exactly(
    tmp_path: Path, database_url: str
) -> None:
    """Snapshots every 20 records under load, and the kill lands as one is being written:
    the restart starts from an older one and is still exact."""
    often = {"SCOREBOARD_WRITER__SNAPSHOT_EVERY_RECORDS": "20",
             "SCOREBOARD_WRITER__SNAPSHOT_SECONDS": "0"}
    port = free_port()
    url = f"http://127.0.0.1:{port}/api/v1/scores/actions"
    acked: dict[tuple[str, str], int] = {}

    async def kill_during_a_snapshot(proc: asyncio.subprocess.Process) -> int:
        """SIGKILL as soon as the server says it writes a snapshot, past 100 acks."""
        assert proc.stderr is not None
        written = 0
        while line := await proc.stderr.readline():
            written += b"snapshot at seq" in line and b"written" in line
            if b"writing the snapshot" in line and len(acked) >= 100:
                proc.send_signal(signal.SIGKILL)
                return written
        raise AssertionError("the server ended before a snapshot was written")

    async with server_process(tmp_path, database_url, port, often) as proc:
        async with aiohttp.ClientSession() as session:
            tasks = [asyncio.create_task(act_until_gone(session, url, f"player{i}", acked))
                     for i in range(8)]
            written = await asyncio.wait_for(kill_during_a_snapshot(proc), 60)
            await proc.wait()
            await asyncio.gather(*tasks)
    assert len(acked) >= 100 and written >= 1

    port2 = free_port()
    startup: list[bytes] = []
    async with server_process(tmp_path, database_url, port2, often, startup), \
            aiohttp.ClientSession() as session:
        board, last_seq = await replay_all(session, f"http://127.0.0.1:{port2}", acked)
    assert any(b"recovered from the snapshot" in line for line in startup), startup
    assert sum(e["score"] for e in board["entries"]) == 10 * last_seq
    assert b"snapshot" in await run_verify(tmp_path, database_url)
