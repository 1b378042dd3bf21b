"""Viewer processes for `bench/live_fanout.py`: many live clients in one process.

    python bench/live_viewers.py ws|sse PORT COUNT [LIMIT]

WebSocket viewers are a minimal client on `asyncio.Protocol` (handshake, unmasked
server frames, masked pongs and close replies) so that thousands fit in one process
and reading costs little; each notes (version, time.monotonic()) for every update.
SSE viewers use aiohttp. Only 127.0.0.1 is ever contacted.

Talks to the coordinator line by line: prints `READY <connected> <failed>` once every
viewer has connected (or given up), then answers commands read from stdin:

- `WAIT <version>`: prints `SEEN <n>`, the viewers that got an update with at least
  that version within 15 s;
- `REPORT`: prints one JSON line, {"records": [[[version, t], …] per viewer]};
- `QUIT`: closes everything and exits.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import sys
import time
from typing import Any, cast

HOST = "127.0.0.1"
LIVE = "/api/v1/leaderboard/live"
STREAM = "/api/v1/leaderboard/stream"
UPDATE = b'{"type":"LEADERBOARD_UPDATE"'
SSE_ID = re.compile(rb"\nid: (\d+)\n")
CONNECT_CONCURRENCY = 64


class Tracker:
    """The versions one viewer received, and a way to wait for one."""

    def __init__(self) -> None:
        self.records: list[tuple[int, float]] = []
        self.newest = -1
        self.seen = asyncio.Event()
        self.want = 0

    def note(self, version: int, now: float) -> None:
        self.records.append((version, now))
        if version > self.newest:
            self.newest = version
            if version >= self.want:
                self.seen.set()

    async def wait_for(self, version: int, seconds: float) -> bool:
        self.want = version
        try:
            async with asyncio.timeout(seconds):
                while self.newest < version:
                    self.seen.clear()
                    await self.seen.wait()
        except TimeoutError:
            return False
        return True


class WsViewer(asyncio.Protocol, Tracker):
    def __init__(self, path: str, opened: asyncio.Future[bool]) -> None:
        Tracker.__init__(self)
        self.path = path
        self.opened = opened
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.upgraded = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        key = base64.b64encode(os.urandom(16)).decode()
        self.transport.write(
            f"GET {self.path} HTTP/1.1\r\nHost: {HOST}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_result(False)

    def data_received(self, data: bytes) -> None:
        buf = self.buffer
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            ok = buf.startswith(b"HTTP/1.1 101")
            del buf[:end + 4]
            self.upgraded = ok
            if not self.opened.done():
                self.opened.set_result(ok)
            if not ok:
                assert self.transport is not None
                self.transport.close()
                return
        now = time.monotonic()
        pos = 0
        n = len(buf)
        while n - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            length = b1 & 0x7F
            head = 2
            if length == 126:
                if n - pos < 4:
                    break
                length = int.from_bytes(buf[pos + 2:pos + 4], "big")
                head = 4
            elif length == 127:
                if n - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2:pos + 10], "big")
                head = 10
            if n - pos < head + length:
                break
            start = pos + head
            opcode = b0 & 0x0F
            if opcode == 0x1:  # the hot path: read the version in place, copy nothing
                if buf.startswith(UPDATE, start):
                    at = buf.find(b'"version":', start, start + 200)
                    if at >= 0:
                        digits = at + 10
                        stop = digits
                        while 48 <= buf[stop] <= 57:
                            stop += 1
                        self.note(int(buf[digits:stop]), now)
            else:
                self._control(opcode, bytes(buf[start:start + length]))
            pos = start + length
        if pos:
            del buf[:pos]

    def _control(self, opcode: int, payload: bytes) -> None:
        if opcode == 0x9:
            self._send(0xA, payload)  # pong
        elif opcode == 0x8:
            self._send(0x8, payload[:2])
            assert self.transport is not None
            self.transport.close()

    def _send(self, opcode: int, payload: bytes) -> None:
        # Client frames are masked (RFC 6455 5.3); payloads here are < 126 bytes.
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        assert self.transport is not None
        self.transport.write(bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class SseViewer(Tracker):
    def __init__(self, port: int, limit: int) -> None:
        super().__init__()
        self.url = f"http://{HOST}:{port}{STREAM}?limit={limit}"

    async def run(self, session: Any, opened: asyncio.Future[bool]) -> None:
        try:
            async with session.get(self.url) as resp:
                opened.set_result(resp.status == 200)
                tail = b""
                async for chunk in resp.content.iter_any():
                    now = time.monotonic()
                    tail = tail[-64:] + chunk
                    for match in SSE_ID.finditer(tail):
                        version = int(match.group(1))
                        if version > self.newest:
                            self.note(version, now)
        except Exception:
            if not opened.done():
                opened.set_result(False)


async def connect_ws(port: int, count: int, limit: int) -> tuple[list[WsViewer], int]:
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    viewers: list[WsViewer] = []
    failed = 0

    async def one() -> None:
        nonlocal failed
        async with gate:
            for _attempt in range(5):
                opened: asyncio.Future[bool] = loop.create_future()
                viewer = WsViewer(f"{LIVE}?limit={limit}", opened)
                try:
                    await loop.create_connection(lambda: viewer, HOST, port)  # noqa: B023 (used here)
                    if await asyncio.wait_for(opened, 30):
                        viewers.append(viewer)
                        return
                except (OSError, TimeoutError):
                    viewer.close()
                await asyncio.sleep(0.2)  # a refused or reset connect: try again shortly
            failed += 1

    await asyncio.gather(*(one() for _ in range(count)))
    return viewers, failed


async def main(kind: str, port: int, count: int, limit: int) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    tasks: list[asyncio.Task[None]] = []
    session = None
    viewers: list[Any]
    if kind == "ws":
        viewers, failed = await connect_ws(port, count, limit)
    else:
        import aiohttp

        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0),
            timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
        )
        viewers = [SseViewer(port, limit) for _ in range(count)]
        opened = [loop.create_future() for _ in viewers]
        tasks = [asyncio.create_task(v.run(session, f)) for v, f in zip(viewers, opened,
                                                                        strict=True)]
        results = await asyncio.gather(*opened)
        failed = sum(1 for ok in results if not ok)
    print(f"READY {len(viewers) - (failed if kind == 'sse' else 0)} {failed}", flush=True)
    try:
        while True:
            line = (await reader.readline()).decode().strip()
            if not line or line == "QUIT":
                break
            if line.startswith("WAIT "):
                version = int(line.split()[1])
                seen = await asyncio.gather(*(v.wait_for(version, 15.0) for v in viewers))
                print(f"SEEN {sum(seen)}", flush=True)
            elif line == "REPORT":
                print(json.dumps({"records": [v.records for v in viewers]}), flush=True)
    finally:
        for v in viewers:
            if isinstance(v, WsViewer):
                v.close()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if session is not None:
            await session.close()


if __name__ == "__main__":
    kind, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    limit = int(sys.argv[4]) if len(sys.argv) > 4 else 10
    try:
        import uvloop
    except ImportError:
        asyncio.run(main(kind, port, count, limit))
    else:
        uvloop.run(main(kind, port, count, limit))
