"""Publishing to a real NATS JetStream: every record exactly once and in order, across a
NATS restart and a SIGKILL of the service."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import nats
import pytest

from tests.integration.conftest import SECRET, ServerFactory

ROOT = Path(__file__).resolve().parents[2]
NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"
STREAM = "SCOREBOARD"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not os.path.exists(NATS_SERVER) and not os.environ.get("CI"),
                       reason="nats-server is not installed"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Nats:
    """A `nats-server -js` of the test's own, restartable on the same port and store."""

    def __init__(self, store: Path) -> None:
        self.port = free_port()
        self.store = store
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            NATS_SERVER, "-js", "-a", "127.0.0.1", "-p", str(self.port),
            "-sd", str(self.store), stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        assert self.proc.stderr is not None
        async with asyncio.timeout(15):
            while line := await self.proc.stderr.readline():
                if b"Server is ready" in line:
                    break
            else:
                raise AssertionError("nats-server exited before it was ready")
        asyncio.get_running_loop().create_task(self._drain())  # keep its pipe from filling

    async def _drain(self) -> None:
        proc = self.proc
        assert proc is not None and proc.stderr is not None
        while await proc.stderr.readline():
            pass

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            await self.proc.wait()
        self.proc = None

    async def stream_ids(self) -> list[int]:
        """The Nats-Msg-Id of every message in the stream, in stream order."""
        nc = await nats.connect(self.url)
        try:
            js = nc.jetstream()
            info = await js.stream_info(STREAM)
            out = []
            for seq in range(info.state.first_seq, info.state.last_seq + 1):
                msg = await js.get_msg(STREAM, seq=seq)
                assert msg.subject and msg.subject.startswith("scoreboard.global.")
                out.append(int((msg.headers or {})["Nats-Msg-Id"]))
            return out
        finally:
            await nc.close()


@pytest.fixture
async def nats_server(tmp_path: Path) -> AsyncIterator[Nats]:
    server = Nats(tmp_path / "jetstream")
    await server.start()
    yield server
    await server.stop()


def service_token() -> str:
    return jwt.encode({"sub": "backend", "scope": "scoreboard:service",
                       "exp": int(time.time()) + 3600}, SECRET, algorithm="HS256")


async def report(http: aiohttp.ClientSession, url: str, first: int, count: int) -> None:
    actions = [{"userId": f"u{i % 40}", "actionType": "COMPLETE_LEVEL",
                "clientActionId": f"c{i}"} for i in range(first, first + count)]
    async with http.post(f"{url}/api/v1/scores/actions/batch", json={"actions": actions},
                         headers={"Authorization": f"Bearer {service_token()}"}) as r:
        assert r.status == 200, await r.text()


async def test_a_nats_restart_loses_and_repeats_nothing(
    start_server: ServerFactory, nats_server: Nats,
) -> None:
    server = await start_server(**{"events.nats.url": nats_server.url,
                                   "events.nats.ack_timeout": 1.0})
    publisher = server.service.publisher
    assert publisher is not None
    await report(server.http, server.url, 0, 150)
    await asyncio.wait_for(publisher.wait_published(150), 15)
    await nats_server.stop()
    # Score actions never wait for NATS: they are acknowledged while it is down.
    started = time.monotonic()
    for b in range(5):
        await report(server.http, server.url, 150 + b * 30, 30)
    assert time.monotonic() - started < 5
    status, ready = await server.get("/ready")
    assert status == 200 and "nats" in ready  # NATS down is reported, never a 503
    await nats_server.start()
    await asyncio.wait_for(publisher.wait_published(300), 30)
    assert await nats_server.stream_ids() == list(range(1, 301))
    status, ready = await server.get("/ready")
    assert ready["nats"]["lag"] == 0 and ready["nats"]["publishedSeq"] == 300
    async with server.http.get(f"{server.url}/metrics") as r:
        text = await r.text()
    assert "scoreboard_events_nats_lag 0.0" in text
    # Shutting down with NATS up: the publisher ends with the rest, promptly.
    await asyncio.wait_for(server.stop(), 10)


@asynccontextmanager
async def service_process(data_dir: Path, nats_url: str) -> AsyncIterator[
        tuple[str, asyncio.subprocess.Process]]:
    port = free_port()
    env = {**os.environ, "SCOREBOARD_JWT_SECRET": SECRET,
           "SCOREBOARD_LIMITS__USER_PER_MINUTE": "0", "SCOREBOARD_LIMITS__IP_PER_MINUTE": "0",
           "SCOREBOARD_EVENTS__NATS__URL": nats_url}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "run.py"), "--http-port", str(port),
        "--ws-port", str(free_port()), "--data-dir", str(data_dir),
        cwd=ROOT, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    try:
        async with asyncio.timeout(30):
            while line := await proc.stderr.readline():
                if b"Scoreboard serving" in line:
                    break
            else:
                raise AssertionError("the service exited before serving")
        yield f"http://127.0.0.1:{port}", proc
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def test_a_killed_service_resumes_where_the_stream_ends(
    tmp_path: Path, nats_server: Nats,
) -> None:
    nc = await nats.connect(nats_server.url)
    arrived = asyncio.Queue[Any]()  # every message the stream takes, as it takes it
    await nc.subscribe("scoreboard.>", cb=arrived.put)
    try:
        async with aiohttp.ClientSession() as http:
            async with service_process(tmp_path / "data", nats_server.url) as (url, proc):
                for b in range(10):
                    await report(http, url, b * 200, 200)
                await asyncio.wait_for(arrived.get(), 15)  # publishing has begun …
                proc.send_signal(signal.SIGKILL)  # … and is cut short
                await proc.wait()
            while not arrived.empty():
                arrived.get_nowait()
            async with service_process(tmp_path / "data", nats_server.url) as (url, proc):
                await report(http, url, 2000, 100)
                async with asyncio.timeout(60):
                    while await _last_id(nats_server) < 2100:
                        await arrived.get()  # something new arrived: look again
        assert await nats_server.stream_ids() == list(range(1, 2101))
    finally:
        await nc.close()


async def _last_id(server: Nats) -> int:
    nc = await nats.connect(server.url)
    try:
        js = nc.jetstream()
        last = (await js.stream_info(STREAM)).state.last_seq
        msg = await js.get_msg(STREAM, seq=last) if last else None
        return int((msg.headers or {})["Nats-Msg-Id"]) if msg else 0
    finally:
        await nc.close()
