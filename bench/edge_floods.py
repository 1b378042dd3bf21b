"""Hostile floods against a real server process: its file descriptors and memory before,
during and after each.

    python -m bench.edge_floods [--scale 1.0]

Starts `run.py` (SQLite, short deadlines) and, one after another: slowloris heads,
bodies that stop short, endless chunked bodies, an idle flood from one address, and
never-reading WebSocket and SSE viewers while the board keeps changing. For each it
prints the server's open descriptors and RSS before, at the peak, and once the
connections are gone, with what the clients were answered. Not a test: figures only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import jwt

from bench.common import UNBOUNDED_RULES

ROOT = Path(__file__).resolve().parents[1]
SECRET = "bench-secret-0123456789abcdef0123456789"
HEADER_TIMEOUT = 2.0
BODY_TIMEOUT = 4.0
STALL = 2.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def token(sub: str) -> str:
    return jwt.encode({"sub": sub, "name": "x" * 40 + sub, "exp": int(time.time()) + 3600},
                      SECRET, algorithm="HS256")


class Server:
    def __init__(self, data_dir: Path) -> None:
        self.http, self.ws = free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("SCOREBOARD_")}
        env["SCOREBOARD_JWT_SECRET"] = SECRET
        env["SCOREBOARD_CONFIG"] = str(UNBOUNDED_RULES)
        sets = {
            "edge.header_timeout": HEADER_TIMEOUT, "edge.body_timeout": BODY_TIMEOUT,
            "edge.body_read_timeout": BODY_TIMEOUT / 2, "live.handshake_timeout": 2.0,
            "live.stall_seconds": STALL, "live.broadcast_interval": 0.02,
            "limits.user_per_minute": 0, "limits.ip_per_minute": 0,
            "abuse.actions_per_minute": 0, "abuse.points_per_minute": 0,
        }
        args = [arg for k, v in sets.items() for arg in ("--set", f"{k}={v}")]
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "run.py"), "--http-port", str(self.http),
             "--ws-port", str(self.ws), "--data-dir", str(data_dir), *args],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def rss_mb(self) -> float:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    async def ready(self) -> None:
        for _ in range(200):
            try:
                _r, w = await asyncio.open_connection("127.0.0.1", self.http)
                w.close()
                return
            except OSError:
                await asyncio.sleep(0.05)
        raise SystemExit("the server did not start")


async def connect(port: int, source: str, rcvbuf: int = 0) -> socket.socket:
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.bind((source, 0))
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    return sock


async def first_line(sock: socket.socket, within: float) -> str:
    """The status of whatever the server answered, 'reset', 'closed' or 'no answer'."""
    loop = asyncio.get_running_loop()
    try:
        data = await asyncio.wait_for(loop.sock_recv(sock, 4096), within)
    except TimeoutError:
        return "no answer"
    except ConnectionError:
        return "reset"
    if not data:
        return "closed"
    return " ".join(data.split(b"\r\n", 1)[0].decode(errors="replace").split()[1:2]) or "?"


async def flood(server: Server, name: str, clients: int,
                client: Callable[[int], Awaitable[str]], settle: float) -> None:
    before = server.fds(), server.rss_mb()
    peak = list(before)
    done = asyncio.Event()

    async def watch() -> None:
        while not done.is_set():
            peak[0], peak[1] = max(peak[0], server.fds()), max(peak[1], server.rss_mb())
            await asyncio.sleep(0.05)

    watcher = asyncio.create_task(watch())
    started = time.monotonic()
    outcomes = await asyncio.gather(*(client(i) for i in range(clients)))
    took = time.monotonic() - started
    deadline = time.monotonic() + settle
    while server.fds() > before[0] + 2 and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.1)  # polling another process: there is no event to wait on
    done.set()
    await watcher
    after = server.fds(), server.rss_mb()
    answers = ", ".join(f"{n}x {what}" for what, n in Counter(outcomes).most_common())
    print(f"{name:<34} fds {before[0]:>5} → {peak[0]:>5} → {after[0]:>5}   "
          f"RSS MB {before[1]:6.1f} → {peak[1]:6.1f} → {after[1]:6.1f}   "
          f"{took:5.1f} s   {answers}")


async def main(scale: float) -> None:
    n = max(10, int(200 * scale))
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(Path(tmp))
        try:
            await server.ready()
            await run_floods(server, n)
        finally:
            server.proc.terminate()
            server.proc.wait(30)


async def run_floods(server: Server, n: int) -> None:
    loop = asyncio.get_running_loop()
    head = b"GET /api/v1/leaderboard HTTP/1.1\r\nHost: x\r\nX-Slow: "

    async def slowloris(i: int) -> str:
        sock = await connect(server.http, f"127.0.1.{i % 200 + 1}")
        answer = asyncio.ensure_future(first_line(sock, 30))
        for byte in head * 10:
            if answer.done():
                break
            try:
                await loop.sock_sendall(sock, bytes([byte]))
            except ConnectionError:
                break
            await asyncio.wait([answer], timeout=0.5)
        sock.close()
        return await answer

    async def short_body(i: int) -> str:
        sock = await connect(server.http, f"127.0.2.{i % 200 + 1}")
        await loop.sock_sendall(sock, (
            "POST /api/v1/scores/actions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
            f"\r\nAuthorization: Bearer {token(f'b{i}')}\r\nContent-Length: 1000\r\n\r\n{{"
        ).encode())
        try:
            return await first_line(sock, 30)
        finally:
            sock.close()

    async def chunked(i: int) -> str:
        sock = await connect(server.http, f"127.0.3.{i % 200 + 1}")
        await loop.sock_sendall(sock, (
            "POST /api/v1/scores/actions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
            f"\r\nAuthorization: Bearer {token(f'c{i}')}\r\nTransfer-Encoding: chunked\r\n\r\n"
        ).encode())
        answer = asyncio.ensure_future(first_line(sock, 30))
        while not answer.done():
            try:
                await loop.sock_sendall(sock, b"1\r\n \r\n")
            except ConnectionError:
                break
            await asyncio.wait([answer], timeout=0.5)
        sock.close()
        return await answer

    idle_sockets: list[socket.socket] = []

    async def idle(i: int) -> str:
        try:
            sock = await connect(server.http, "127.0.4.1")
        except OSError as exc:
            return type(exc).__name__
        idle_sockets.append(sock)
        return await first_line(sock, 30)

    print(f"deadlines: head {HEADER_TIMEOUT:g} s, body {BODY_TIMEOUT:g} s; stall {STALL:g} s")
    await flood(server, f"slowloris heads x{n}", n, slowloris, 10)
    await flood(server, f"bodies that stop short x{n}", n, short_body, 10)
    await flood(server, f"endless chunked bodies x{n}", n, chunked, 10)
    await flood(server, f"idle, one address x{n * 5}", n * 5, idle, 10)
    for sock in idle_sockets:
        sock.close()
    for transport in ("ws", "sse"):
        await never_reading(server, transport, n)


async def never_reading(server: Server, transport: str, n: int) -> None:
    loop = asyncio.get_running_loop()
    users = [f"u{i:03d}" for i in range(100)]
    stop = asyncio.Event()

    async def post(sock: socket.socket, user: str, cid: str) -> None:
        body = f'{{"actionType":"COMPLETE_LEVEL","clientActionId":"{cid}"}}'.encode()
        await loop.sock_sendall(sock, (
            f"POST /api/v1/scores/actions HTTP/1.1\r\nHost: x\r\nContent-Type: "
            f"application/json\r\nAuthorization: Bearer {token(user)}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body)
        await loop.sock_recv(sock, 4096)

    async def churn() -> None:
        sock = await connect(server.http, "127.0.9.1")
        k = 0
        try:
            while not stop.is_set():
                k += 1
                await post(sock, users[k % 100], f"{transport}-{k}")
        finally:
            sock.close()

    request = (
        "GET /api/v1/leaderboard/live?limit=100 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n" if transport == "ws"
        else "GET /api/v1/leaderboard/stream?limit=100 HTTP/1.1\r\nHost: x\r\n\r\n"
    ).encode()
    port = server.ws if transport == "ws" else server.http

    async def viewer(i: int) -> str:
        sock = await connect(port, f"127.0.{5 if transport == 'ws' else 6}.{i % 200 + 1}",
                             rcvbuf=4096)
        await loop.sock_sendall(sock, request)
        # never read: wait until the server gives up on it (reset or closed)
        started = time.monotonic()
        try:
            await asyncio.wait_for(_closed(sock), 60)
        except TimeoutError:
            return "still open after 60 s"
        finally:
            sock.close()
        return f"reset within {int(time.monotonic() - started) + 1} s"

    async def seed() -> None:
        sock = await connect(server.http, "127.0.9.2")
        try:
            for user in users:
                await post(sock, user, f"seed-{transport}")
        finally:
            sock.close()

    await seed()
    churner = asyncio.create_task(churn())
    try:
        await flood(server, f"never-reading {transport.upper()} viewers x{n}", n, viewer, 10)
    finally:
        stop.set()
        await churner


async def _closed(sock: socket.socket) -> None:
    """Returns once the server has reset the connection (SO_ERROR) or closed it, without
    reading what it sent: the receive buffer stays full, as a non-reader leaves it."""
    while not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):  # noqa: ASYNC110
        await asyncio.sleep(0.05)  # a socket's error state has no event to wait on


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    asyncio.run(main(parser.parse_args().scale))
