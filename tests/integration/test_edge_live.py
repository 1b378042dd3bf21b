"""Live viewers against the edge's fair shares and deadlines (SPEC §5, §7): a per-address
cap over WebSocket and SSE together, never-reading clients cut off with their socket
really closed and their place given back, a hung-up SSE client noticed at once."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from scoreboard.app import Service
from tests.integration.conftest import make_settings, open_fds, wait_for

WAIT = 10.0
LIVE = "/api/v1/leaderboard/live"
STREAM = "/api/v1/leaderboard/stream"


@pytest.fixture
async def edge(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Service]]]:
    started: list[Service] = []

    async def factory(**overrides: Any) -> Service:
        settings = make_settings(tmp_path / f"s{len(started)}", "memory:", **overrides)
        service = Service.build(settings)
        await service.start()
        started.append(service)
        return service

    yield factory
    for service in started:
        await service.stop()






async def raw_socket(port: int, request: bytes, source: str = "127.0.0.1") -> socket.socket:
    """A client on a plain socket with a tiny receive buffer, which it never reads."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.bind((source, 0))
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    await loop.sock_sendall(sock, request)
    return sock


def ws_handshake(query: str = "limit=100") -> bytes:
    return (f"GET {LIVE}?{query} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n").encode()


def sse_request(query: str = "limit=100") -> bytes:
    return f"GET {STREAM}?{query} HTTP/1.1\r\nHost: x\r\n\r\n".encode()


async def seed(service: Service, players: list[str]) -> None:
    """Long display names: each update of a top-100 is some kilobytes."""
    for p in players:
        await act(service, p, "seed")


async def act(service: Service, user: str, cid: str) -> None:
    from scoreboard.core.commands import SubmitAction

    await service.writer.submit(SubmitAction(user, "y" * 60 + user, "global",
                                             "COMPLETE_LEVEL", cid))


async def peer_closed(sock: socket.socket, within: float = WAIT) -> bool:
    """True once the server has closed (or reset) this connection; reads what is left."""
    loop = asyncio.get_running_loop()
    try:
        while await asyncio.wait_for(loop.sock_recv(sock, 65536), within):
            pass
    except ConnectionError:
        pass
    return True


@pytest.mark.parametrize("transport", ["ws", "sse"])
async def test_a_never_reading_client_is_cut_off_its_socket_closed_and_its_place_freed(
    edge: Callable[..., Awaitable[Service]], transport: str
) -> None:
    stall = 1.0
    service = await edge(**{"live.stall_seconds": stall, "live.broadcast_interval": 0.01,
                            "live.send_buffer_cap": 64 * 1024 * 1024})
    players = [f"p{i:03d}" for i in range(100)]
    await seed(service, players)
    fds = open_fds()
    port = service.ws_port if transport == "ws" else service.http_port
    sock = await raw_socket(port, ws_handshake() if transport == "ws" else sse_request())
    hub, gate = service.live.hub, service.live.gate
    try:
        await wait_for(lambda: hub.count(transport) == 1)
        assert gate.total == 1 and service.edge.budget.open == 1
        n = 0

        async def drive() -> None:
            nonlocal n
            while hub.cut_off == 0:
                n += 1
                await asyncio.gather(*(act(service, p, f"{p}-{n}")
                                       for p in players[n % 10 * 10:n % 10 * 10 + 10]))
                await asyncio.sleep(0.005)  # a steady stream of updates, not a flood

        # Kernel buffers are kept small on live sockets: the stall shows up within
        # seconds of the client's last read, not after megabytes.
        started = time.monotonic()
        await asyncio.wait_for(drive(), 20)
        assert time.monotonic() - started < stall + 2.5
        await wait_for(lambda: hub.count(transport) == 0 and gate.total == 0)
        await wait_for(lambda: service.edge.budget.open == 0)  # the socket is gone
        assert await peer_closed(sock)
    finally:
        sock.close()
    await wait_for(lambda: open_fds() <= fds)


async def test_one_address_is_capped_over_websocket_and_sse_while_another_connects(
    edge: Callable[..., Awaitable[Service]]
) -> None:
    service = await edge(**{"live.max_connections_per_ip": 3,
                            "server.trusted_proxies": ["127.0.0.9"]})
    held = [await raw_socket(service.ws_port, ws_handshake("limit=10"), "127.0.0.2")
            for _ in range(2)]
    held.append(await raw_socket(service.http_port, sse_request("limit=10"), "127.0.0.2"))
    gate = service.live.gate
    try:
        await wait_for(lambda: gate.per_ip.get("127.0.0.2") == 3)
        ws_url = f"ws://127.0.0.1:{service.ws_port}{LIVE}"
        with pytest.raises(InvalidStatus) as info:
            async with connect(ws_url, open_timeout=WAIT,
                               local_addr=("127.0.0.2", 0)):
                pass
        response = info.value.response
        assert response.status_code == 503 and response.headers["Retry-After"]
        assert b'"OVERLOADED"' in response.body
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
        ) as http:
            async with http.get(f"http://127.0.0.1:{service.http_port}{STREAM}") as r:
                assert r.status == 503 and (await r.json())["error"]["code"] == "OVERLOADED"
        # another address still connects
        async with connect(ws_url, open_timeout=WAIT, local_addr=("127.0.0.3", 0)) as ws:
            assert b"CONNECTION_ACK" in (await asyncio.wait_for(ws.recv(decode=False), WAIT))
        # behind a trusted proxy each forwarded client has its own share
        async with connect(ws_url, open_timeout=WAIT, local_addr=("127.0.0.9", 0),
                           additional_headers={"X-Forwarded-For": "198.51.100.7"}):
            assert gate.per_ip.get("198.51.100.7") == 1
    finally:
        for sock in held:
            sock.close()
    await wait_for(lambda: gate.total == 0 and not gate.per_ip)
    text = service.metrics.render().decode()
    assert 'scoreboard_edge_refusals_total{kind="cap",reason="live_per_ip"} 2.0' in text


async def test_a_hung_up_sse_client_is_noticed_before_the_next_heartbeat(
    edge: Callable[..., Awaitable[Service]]
) -> None:
    service = await edge(**{"live.sse_heartbeat": 30.0})
    hub, gate = service.live.hub, service.live.gate
    sock = await raw_socket(service.http_port, sse_request("limit=10"))
    await wait_for(lambda: hub.count("sse") == 1)
    sock.close()
    took = await wait_for(lambda: hub.count("sse") == 0 and gate.total == 0, within=5.0)
    assert took < 5.0  # not the 30 s heartbeat
    await wait_for(lambda: service.edge.budget.open == 0)
