"""Live updates over WebSocket, with the `websockets` client and raw sockets against a
real service on 127.0.0.1 (SQLite and PostgreSQL; one test on the memory log)."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from scoreboard.app import Service
from scoreboard.storage import MemoryLog
from tests.integration.conftest import Running, ServerFactory, make_settings

WAIT = 10.0  # safety net for anything awaited; nothing here sleeps
LIVE = "/api/v1/leaderboard/live"


def ws_url(r: Running, path: str = LIVE, **query: Any) -> str:
    qs = "&".join(f"{k}={v}" for k, v in query.items())
    return f"ws://127.0.0.1:{r.service.ws_port}{path}" + (f"?{qs}" if qs else "")


async def recv(ws: ClientConnection, within: float = WAIT) -> dict[str, Any]:
    message: dict[str, Any] = orjson.loads(await asyncio.wait_for(ws.recv(), within))
    return message


@asynccontextmanager
async def viewer(
    r: Running, **query: Any
) -> AsyncIterator[tuple[ClientConnection, dict[str, Any]]]:
    """A connected client that has read its ACK; yields it with the snapshot's data."""
    headers = query.pop("headers", None)
    async with connect(ws_url(r, **query), additional_headers=headers,
                       open_timeout=WAIT) as ws:
        ack = await recv(ws)
        assert ack["type"] == "CONNECTION_ACK"
        snapshot = await recv(ws)
        assert snapshot["type"] == "LEADERBOARD_UPDATE"
        yield ws, snapshot["data"]


def users(data: dict[str, Any]) -> list[str]:
    return [e["userId"] for e in data["top"]]


async def refused(url: str, headers: dict[str, str] | None = None) -> int:
    with pytest.raises(InvalidStatus) as info:
        async with connect(url, additional_headers=headers, open_timeout=WAIT):
            pass
    status: int = info.value.response.status_code
    return status


async def test_ack_then_snapshot_on_connect(server: Running) -> None:
    for who in ("alice", "bob", "alice"):
        status, _ = await server.act(who, cid=f"{who}-{os.urandom(4).hex()}")
        assert status == 200
    token = server.token("carol", "Carol")
    async with connect(ws_url(server, limit=5, token=token)) as ws:
        ack = await recv(ws)
        assert ack["type"] == "CONNECTION_ACK"
        assert ack["data"]["userId"] == "carol" and ack["data"]["board"] == "global"
        assert ack["data"]["heartbeatSeconds"] > 0 and ack["data"]["connectedAt"].endswith("Z")
        snap = await recv(ws)
    assert snap["type"] == "LEADERBOARD_UPDATE"
    _, board = await server.get("/api/v1/leaderboard?limit=5")
    assert snap["data"]["top"] == board["entries"] and snap["data"]["version"] == board["version"]
    assert set(snap["data"]) == {"board", "version", "period", "top", "timestamp"}
    async with viewer(server) as (_, anonymous):  # no token: public board
        assert users(anonymous) == ["alice", "bob"]
        async with server.http.get(f"{server.url}/metrics") as resp:
            metrics = await resp.text()
        assert 'scoreboard_live_connections{transport="ws"} 1.0' in metrics


async def test_update_after_an_action_that_changes_the_top(server: Running) -> None:
    await server.act("alice")
    async with viewer(server, limit=10) as (ws, snap):
        assert users(snap) == ["alice"]
        status, _ = await server.act("bob")
        assert status == 200
        update = await recv(ws)
    assert update["type"] == "LEADERBOARD_UPDATE"
    assert users(update["data"]) == ["alice", "bob"]
    assert update["data"]["version"] > snap["version"]


async def test_no_update_when_the_top_n_stays_the_same(server: Running) -> None:
    for i in range(3):
        await server.act("alice", cid=f"a{i}")  # 30 points
    await server.act("bob", cid="b0")  # 10 points
    async with viewer(server, limit=1) as (top1, snap1), viewer(server, limit=2) as (top2, _):
        assert users(snap1) == ["alice"]
        await server.act("bob", cid="b1")  # 20 < 30: the top 1 stays, the top 2 moves
        moved = await recv(top2)  # the hub has flushed this change for every group
        assert moved["data"]["top"][1]["score"] == 20
        with pytest.raises(TimeoutError):
            await recv(top1, within=0.3)
        await server.act("bob", cid="b2")  # 30: still behind alice (she got there first)
        await recv(top2)
        await server.act("bob", cid="b3")  # 40: now bob leads
        update = await recv(top1)  # the very next message is this change
    assert users(update["data"]) == ["bob"] and update["data"]["top"][0]["score"] == 40


async def test_refusals_at_the_handshake(server: Running) -> None:
    assert await refused(ws_url(server, token="not-a-token")) == 401
    assert await refused(ws_url(server), {"Authorization": "Bearer nope"}) == 401
    expired = server.token("alice", ttl=-3600)
    assert await refused(ws_url(server, token=expired)) == 401
    assert await refused(ws_url(server, "/elsewhere")) == 404
    assert await refused(ws_url(server, board="no-such-board")) == 404
    assert await refused(ws_url(server, limit=0)) == 400
    assert await refused(ws_url(server, limit="many")) == 400
    assert server.service.live.gate.total == 0  # refused handshakes hold no place


async def test_private_board_needs_a_token(start_server: ServerFactory) -> None:
    r = await start_server(**{"leaderboard.public": False})
    assert await refused(ws_url(r)) == 401
    async with viewer(r, token=r.token("alice")) as (_, snap):
        assert snap["board"] == "global"
    headers = r.headers("bob")
    async with viewer(r, headers=headers) as (_, snap):
        assert snap["board"] == "global"


async def test_a_client_frame_closes_with_1008(server: Running) -> None:
    async with viewer(server) as (ws, _):
        await ws.send("hello?")
        error = await recv(ws)
        assert error["type"] == "ERROR" and error["data"]["code"] == "RECEIVE_ONLY"
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), WAIT)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1008


async def test_oversized_client_frame_closes_with_1009(server: Running) -> None:
    async with viewer(server) as (ws, _):
        await ws.send("x" * 10_000)
        with pytest.raises(ConnectionClosed) as info:
            while True:
                await asyncio.wait_for(ws.recv(), WAIT)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1009


async def test_connection_caps_answer_503(start_server: ServerFactory) -> None:
    r = await start_server(**{"live.max_connections": 2, "live.max_connections_per_user": 1})
    alice = r.token("alice")
    async with viewer(r, token=alice):
        assert await refused(ws_url(r, token=alice)) == 503  # per user
        async with viewer(r):
            assert await refused(ws_url(r)) == 503  # total
            assert await refused(ws_url(r, token=r.token("bob"))) == 503
            handlers = server_handlers(r)
    # places are given back when the sockets are gone on the server's side too
    await asyncio.wait_for(asyncio.wait(handlers), WAIT)
    assert r.service.live.gate.total == 0
    async with viewer(r, token=alice), viewer(r):
        pass


def server_handlers(r: Running) -> set[asyncio.Task[None]]:
    """The server's connection handler tasks now; each ends after its socket closed."""
    server = r.service.live.ws.server
    assert server is not None
    return set(server.handler_tasks)


async def test_shutdown_closes_with_1001(server: Running) -> None:
    async with viewer(server) as (ws, _), viewer(server, limit=3) as (ws2, _):
        await server.stop()
        for client in (ws, ws2):
            with pytest.raises(ConnectionClosed) as info:
                await asyncio.wait_for(client.recv(), WAIT)
            assert info.value.rcvd is not None and info.value.rcvd.code == 1001


async def test_no_update_for_a_change_whose_commit_failed(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, "memory:", **{"writer.retry_seconds": 0.0})
    service = Service.build(settings)
    store = service.store
    assert isinstance(store, MemoryLog)
    await service.start()
    session = aiohttp.ClientSession()
    r = Running(settings, service, session)
    try:
        await r.act("alice")
        async with viewer(r) as (ws, snap):
            assert users(snap) == ["alice"]
            store.fail_next(1)
            status, body = await r.act("ghost")
            assert status == 503 and body["error"]["code"] == "STORE_UNAVAILABLE"
            status, _ = await r.act("bob")
            assert status == 200
            update = await recv(ws)  # the first message after the failure
        assert users(update["data"]) == ["alice", "bob"]
        _, board = await r.get("/api/v1/leaderboard")
        assert "ghost" not in [e["userId"] for e in board["entries"]]
    finally:
        await r.stop()
        await session.close()


# -- a client that never reads ---------------------------------------------------------


async def raw_handshake(port: int, path: str) -> socket.socket:
    """A WebSocket upgrade on a plain socket with a tiny receive buffer; never read again."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    await loop.sock_sendall(sock, request.encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = await asyncio.wait_for(loop.sock_recv(sock, 1024), WAIT)
        assert chunk, "closed during the handshake"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head[:100]
    return sock


async def read_until_closed(sock: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    try:
        while await loop.sock_recv(sock, 1 << 16):
            pass
    except ConnectionResetError:
        pass


@pytest.mark.parametrize(
    ("cap", "stall"),
    [
        pytest.param(1024, 3600.0, id="buffer-cap"),  # the cap cuts it
        pytest.param(64 * 1024 * 1024, 0.5, id="stall"),  # the buffer never drains
    ],
)
async def test_a_client_that_never_reads_is_cut_off_and_others_stay_on_time(
    start_server: ServerFactory, cap: int, stall: float
) -> None:
    r = await start_server(**{
        "live.send_buffer_cap": cap,
        "live.stall_seconds": stall,
        "live.broadcast_interval": 0.005,
    })
    name = "x" * 60  # long names make big frames: the buffers fill sooner
    players = [f"p{i:03d}" for i in range(100)]
    await asyncio.gather(*(
        r.http.post(f"{r.url}/api/v1/scores/actions", headers=r.headers(p, f"{name}{p}"),
                    json={"actionType": "COMPLETE_LEVEL", "clientActionId": "seed"})
        for p in players
    ))
    hub = r.service.live.hub
    slow = await raw_handshake(r.service.ws_port, f"{LIVE}?limit=100")
    try:
        async with viewer(r, limit=100) as (ws, _):
            newest = 0
            arrived = asyncio.Condition()

            async def read() -> None:
                nonlocal newest
                while True:
                    version = (await recv(ws, within=60))["data"]["version"]
                    async with arrived:
                        newest = version
                        arrived.notify_all()

            reader = asyncio.create_task(read())
            try:
                async def drive() -> None:
                    n = 0
                    while hub.cut_off == 0:  # each round moves the top 100
                        n += 1
                        batch = players[n % 10 * 10:n % 10 * 10 + 10]
                        await asyncio.gather(*(r.act(p, cid=f"{p}-{n}") for p in batch))

                await asyncio.wait_for(drive(), 60)
                await asyncio.wait_for(read_until_closed(slow), WAIT)
                assert hub.count("ws") == 1
                # the reader is still served promptly: a change reaches it at once
                await r.act("p000", cid="final")
                version = r.service.engine.boards["global"].version
                async with arrived:
                    await asyncio.wait_for(arrived.wait_for(lambda: newest >= version), 2.0)
            finally:
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)
    finally:
        slow.close()
