"""Live updates over Server-Sent Events, with aiohttp's client and raw sockets against a
real service on 127.0.0.1 (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.integration.conftest import Running, ServerFactory

WAIT = 10.0
STREAM = "/api/v1/leaderboard/stream"


class EventStream:
    """Reads one SSE response block by block: events, comments and retry hints."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response

    async def block(self, within: float = WAIT) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.response.content.readuntil(b"\n\n"), within)
        assert raw.endswith(b"\n\n"), "the stream ended"
        fields: dict[str, Any] = {"comments": []}
        for line in raw.decode().split("\n"):
            if not line:
                continue
            if line.startswith(":"):
                fields["comments"].append(line[1:].strip())
                continue
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
        return fields

    async def event(self, within: float = WAIT) -> dict[str, Any]:
        """The next `leaderboard` event (retry hints and comments skipped)."""
        while True:
            block = await self.block(within)
            if block.get("event") == "leaderboard":
                data: dict[str, Any] = orjson.loads(block["data"])
                assert int(block["id"]) == data["version"]
                return data


@asynccontextmanager
async def stream(r: Running, headers: dict[str, str] | None = None,
                 **query: Any) -> AsyncIterator[EventStream]:
    async with r.http.get(f"{r.url}{STREAM}", params=query, headers=headers,
                          timeout=aiohttp.ClientTimeout(total=None, sock_read=None)) as resp:
        assert resp.status == 200, await resp.text()
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        assert resp.headers["Cache-Control"] == "no-cache"
        yield EventStream(resp)


def users(data: dict[str, Any]) -> list[str]:
    return [e["userId"] for e in data["top"]]


async def test_snapshot_first_then_an_update_after_a_change(server: Running) -> None:
    await server.act("alice")
    async with stream(server, limit=5) as events:
        first = await events.block()
        assert first["retry"] == "2000"  # browsers' EventSource reconnect delay
        snapshot = await events.event()
        _, board = await server.get("/api/v1/leaderboard?limit=5")
        assert snapshot["top"] == board["entries"] and snapshot["version"] == board["version"]
        assert set(snapshot) == {"board", "version", "period", "top", "timestamp"}
        await server.act("bob")
        update = await events.event()
    assert users(update) == ["alice", "bob"] and update["version"] > snapshot["version"]


async def test_same_data_object_as_the_websocket(server: Running) -> None:
    await server.act("alice")
    url = f"ws://127.0.0.1:{server.service.ws_port}/api/v1/leaderboard/live?limit=3"
    async with stream(server, limit=3) as events, connect(url) as ws:
        await ws.recv()  # ACK
        ws_data = orjson.loads(await ws.recv())["data"]
        sse_data = await events.event()
    ws_data.pop("timestamp"), sse_data.pop("timestamp")
    assert ws_data == sse_data


async def test_last_event_id(server: Running) -> None:
    await server.act("alice")
    async with stream(server) as events:
        snapshot = await events.event()
    current = str(snapshot["version"])
    # Already has the current version: no snapshot; the first event is the next change.
    async with stream(server, headers={"Last-Event-ID": current}) as events:
        assert (await events.block())["retry"] == "2000"
        await server.act("bob")
        update = await events.event()
        assert users(update) == ["alice", "bob"]
    # An older (or unknown) version: the snapshot comes first, as for a new client.
    for stale in (str(snapshot["version"] - 1), "garbage"):
        async with stream(server, headers={"Last-Event-ID": stale}) as events:
            again = await events.event()
            assert users(again) == ["alice", "bob"] and again["version"] == update["version"]


async def test_heartbeat_comments(start_server: ServerFactory) -> None:
    r = await start_server(**{"live.sse_heartbeat": 0.1})
    async with stream(r) as events:
        await events.event()
        block = await events.block()
    assert block["comments"] == ["heartbeat"] and "event" not in block


async def test_auth_as_the_leaderboard_get(start_server: ServerFactory) -> None:
    r = await start_server(**{"leaderboard.public": False})
    for headers in (None, {"Authorization": "Bearer nope"}, {"Authorization": "Basic x"}):
        async with r.http.get(f"{r.url}{STREAM}", headers=headers) as resp:
            assert resp.status == 401
            body = await resp.json()
            assert body["error"]["code"] == "UNAUTHORIZED" and body["error"]["requestId"]
    # the token never goes in the query string here (it would be logged)
    async with r.http.get(f"{r.url}{STREAM}", params={"token": r.token("a")}) as resp:
        assert resp.status == 401
    async with stream(r, headers=r.headers("alice")) as events:
        assert (await events.event())["board"] == "global"
    for query, status in (({"board": "nope"}, 404), ({"limit": "0"}, 400)):
        async with r.http.get(f"{r.url}{STREAM}", params=query, headers=r.headers("a")) as resp:
            assert resp.status == status


async def test_counted_in_the_same_caps_as_websockets(start_server: ServerFactory) -> None:
    r = await start_server(**{"live.max_connections": 1})
    url = f"ws://127.0.0.1:{r.service.ws_port}/api/v1/leaderboard/live"
    async with stream(r) as events:
        await events.event()
        async with r.http.get(f"{r.url}{STREAM}") as resp:
            assert resp.status == 503 and resp.headers["Retry-After"]
        with pytest.raises(InvalidStatus) as info:
            async with connect(url):
                pass
        assert info.value.response.status_code == 503


async def test_shutdown_ends_streams_without_waiting_for_the_grace_period(
    server: Running,
) -> None:
    async with stream(server) as events:
        await events.event()
        # shutdown_grace is 5 s: a stream still open would hold stop() that long
        await asyncio.wait_for(server.stop(), 3.0)
        rest = await asyncio.wait_for(events.response.content.read(), WAIT)
    assert rest == b""


async def raw_stream(port: int) -> socket.socket:
    """An SSE request on a plain socket with a tiny receive buffer, never read."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    await loop.sock_sendall(
        sock, f"GET {STREAM}?limit=100 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    )
    return sock


@pytest.mark.parametrize(
    ("cap", "stall"),
    [pytest.param(1024, 3600.0, id="buffer-cap"), pytest.param(64 * 1024 * 1024, 0.5, id="stall")],
)
async def test_a_client_that_never_reads_is_cut_off_and_others_go_on(
    start_server: ServerFactory, cap: int, stall: float
) -> None:
    r = await start_server(**{
        "live.send_buffer_cap": cap,
        "live.stall_seconds": stall,
        "live.broadcast_interval": 0.005,
    })
    players = [f"p{i:03d}" for i in range(100)]
    await asyncio.gather(*(
        r.http.post(f"{r.url}/api/v1/scores/actions", headers=r.headers(p, "y" * 60 + p),
                    json={"actionType": "COMPLETE_LEVEL", "clientActionId": "seed"})
        for p in players
    ))
    hub = r.service.live.hub
    slow = await raw_stream(r.service.http_port)
    try:
        async with stream(r, limit=100) as events:
            newest = 0
            arrived = asyncio.Condition()

            async def read() -> None:
                nonlocal newest
                while True:
                    version = (await events.event(within=60))["version"]
                    async with arrived:
                        newest = version
                        arrived.notify_all()

            reader = asyncio.create_task(read())
            try:
                async def drive() -> None:
                    n = 0
                    while hub.cut_off == 0:
                        n += 1
                        batch = players[n % 10 * 10:n % 10 * 10 + 10]
                        await asyncio.gather(*(r.act(p, cid=f"{p}-{n}") for p in batch))

                await asyncio.wait_for(drive(), 60)
                await r.act("p000", cid="final")
                version = r.service.engine.boards["global"].version
                async with arrived:
                    await asyncio.wait_for(arrived.wait_for(lambda: newest >= version), 2.0)
                assert hub.count("sse") == 1
            finally:
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)
    finally:
        slow.close()
