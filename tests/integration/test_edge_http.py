"""The edge against hostile clients on raw sockets (SPEC §4, §7): every refusal made
before a handler runs is the JSON error object, on both ports; no socket is held
without a deadline; no address takes more than its share; repeated JSON keys are
refused. In-process services on 127.0.0.1, each test bounded in time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from scoreboard.app import Service
from tests.integration.conftest import make_settings, open_fds, wait_for

WAIT = 10.0
ACTIONS = "/api/v1/scores/actions"


async def start(tmp_path: Path, **overrides: Any) -> Service:
    service = Service.build(make_settings(tmp_path, "memory:", **overrides))
    await service.start()
    return service


@pytest.fixture
async def edge(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Service]]]:
    started: list[Service] = []

    async def factory(**overrides: Any) -> Service:
        service = await start(tmp_path / f"s{len(started)}", **overrides)
        started.append(service)
        return service

    yield factory
    for service in started:
        await service.stop()


class Raw:
    """A client on a plain socket, from any 127/8 source address."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int, source: str = "127.0.0.1") -> Raw:
        reader, writer = await asyncio.open_connection("127.0.0.1", port,
                                                       local_addr=(source, 0))
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def answer(self, within: float = WAIT) -> tuple[int, dict[str, str], Any]:
        """One HTTP response: status, headers (lower-case names), JSON body."""
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), within)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = await asyncio.wait_for(
            self.reader.readexactly(int(headers["content-length"])), within)
        return status, headers, orjson.loads(body)

    async def closed(self, within: float = WAIT) -> bool:
        """True once the server has closed the connection (EOF or reset)."""
        try:
            while await asyncio.wait_for(self.reader.read(65536), within):
                pass
        except ConnectionError:
            pass
        return True

    def close(self) -> None:
        self.writer.close()


def assert_error(answer: tuple[int, dict[str, str], Any], status: int, code: str) -> None:
    got, headers, body = answer
    assert (got, body["error"]["code"]) == (status, code), body
    assert headers["content-type"].startswith("application/json")
    assert body["error"]["requestId"] == headers["x-request-id"]
    assert body["error"]["message"]




LIVE = "/api/v1/leaderboard/live"
BOARD = "/api/v1/leaderboard"
HEADS = {
    "8 KiB Authorization": (b"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                            + b"a" * 8192 + b"\r\n\r\n", 431, "HEADERS_TOO_LARGE"),
    "64 KiB Authorization": (b"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                             + b"a" * 65536 + b"\r\n\r\n", 431, "HEADERS_TOO_LARGE"),
    "200 headers": (b"GET {path} HTTP/1.1\r\nHost: x\r\n"
                    + b"".join(b"X-H%d: v\r\n" % i for i in range(200)) + b"\r\n",
                    431, "HEADERS_TOO_LARGE"),
    "Content-Length with Transfer-Encoding": (
        b"GET {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "INVALID_REQUEST"),
    "malformed request line": (b"GARBAGE\r\n\r\n", 400, "INVALID_REQUEST"),
    "request line over 8 KiB": (b"GET {path}?x=" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
                                400, "INVALID_REQUEST"),
    "bad HTTP version": (b"GET {path} HTTP/7.0\r\nHost: x\r\n\r\n", 400, "INVALID_REQUEST"),
}


@pytest.mark.parametrize("port", ["http", "ws"])
@pytest.mark.parametrize("name", list(HEADS))
async def test_parser_refusals_are_the_json_error_object(
    edge: Callable[..., Awaitable[Service]], name: str, port: str
) -> None:
    service = await edge()
    data, status, code = HEADS[name]
    target = service.http_port if port == "http" else service.ws_port
    path = BOARD if port == "http" else LIVE
    client = await Raw.open(target)
    try:
        await client.send(data.replace(b"{path}", path.encode()))
        assert_error(await client.answer(), status, code)
        assert await client.closed()
    finally:
        client.close()
    text = service.metrics.render().decode()
    assert f'scoreboard_edge_refusals_total{{kind="parser",reason="{code}"}} 1.0' in text


async def test_slowloris_heads_get_408_within_the_deadline_on_both_ports(
    edge: Callable[..., Awaitable[Service]]
) -> None:
    service = await edge(**{"edge.header_timeout": 0.5, "live.handshake_timeout": 0.5})
    fds = open_fds()
    clients = [await Raw.open(port) for port in (service.http_port, service.ws_port)
               for _ in range(20)]
    started = time.monotonic()

    async def trickle(client: Raw) -> tuple[int, dict[str, str], Any]:
        reading = asyncio.ensure_future(client.answer())
        for byte in b"GET / HTTP/1.1\r\nHost: slow\r\nX-Slow: 1234567890":
            if reading.done():
                break
            try:
                await client.send(bytes([byte]))
            except ConnectionError:
                break
            await asyncio.wait([reading], timeout=0.05)  # one byte every 50 ms
        return await reading

    answers = await asyncio.gather(*(trickle(c) for c in clients))
    elapsed = time.monotonic() - started
    for answer in answers:
        assert_error(answer, 408, "REQUEST_TIMEOUT")
    assert elapsed < 3.0, elapsed  # 0.5 s deadline, not however long the trickle goes on
    for client in clients:
        assert await client.closed()
        client.close()
    await wait_for(lambda: service.edge.budget.open == 0)
    await wait_for(lambda: open_fds() <= fds)




def action_head(service: Service, length: str) -> bytes:
    token = service.auth.mint("slowbody", name="Slow")
    return (f"POST {ACTIONS} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\n{length}\r\n\r\n").encode()


async def test_a_body_that_stops_short_gets_408_after_the_read_deadline(
    edge: Callable[..., Awaitable[Service]]
) -> None:
    service = await edge(**{"edge.body_read_timeout": 0.3, "edge.body_timeout": 5.0})
    client = await Raw.open(service.http_port)
    try:
        await client.send(action_head(service, "Content-Length: 100") + b'{"actionType"')
        started = time.monotonic()
        assert_error(await client.answer(), 408, "REQUEST_TIMEOUT")
        assert time.monotonic() - started < 2.0
        assert await client.closed()
    finally:
        client.close()
    assert service.engine.last_seq == 0


@pytest.mark.parametrize("framing", ["Content-Length: 100000", "Transfer-Encoding: chunked"])
async def test_a_trickled_body_gets_408_at_the_total_deadline(
    edge: Callable[..., Awaitable[Service]], framing: str
) -> None:
    service = await edge(**{"edge.body_read_timeout": 0.5, "edge.body_timeout": 1.0,
                            "limits.max_body_bytes": 1_000_000})
    client = await Raw.open(service.http_port)
    chunked = framing.startswith("Transfer")
    try:
        await client.send(action_head(service, framing))
        started = time.monotonic()
        reading = asyncio.ensure_future(client.answer())
        while not reading.done():  # a byte every 100 ms: never idle, never finished
            with_frame = b"1\r\n \r\n" if chunked else b" "
            try:
                await client.send(with_frame)
            except ConnectionError:
                break
            await asyncio.wait([reading], timeout=0.1)
        assert_error(await reading, 408, "REQUEST_TIMEOUT")
        assert time.monotonic() - started < 3.5
        assert await client.closed()
    finally:
        client.close()


async def test_an_endless_chunked_body_is_413_once_past_the_cap(
    edge: Callable[..., Awaitable[Service]]
) -> None:
    service = await edge()
    client = await Raw.open(service.http_port)
    try:
        await client.send(action_head(service, "Transfer-Encoding: chunked"))
        reading = asyncio.ensure_future(client.answer())
        chunk = b"400\r\n" + b" " * 1024 + b"\r\n"
        while not reading.done():
            try:
                await client.send(chunk * 4)
            except ConnectionError:
                break
            await asyncio.wait([reading], timeout=0.01)
        assert_error(await reading, 413, "PAYLOAD_TOO_LARGE")
    finally:
        client.close()


async def test_idle_flood_from_one_address_is_capped_and_dropped_others_still_served(
    edge: Callable[..., Awaitable[Service]]
) -> None:
    per_ip = 50
    service = await edge(**{"edge.header_timeout": 1.0, "edge.max_connections_per_ip": per_ip,
                            "live.handshake_timeout": 1.0})
    fds = open_fds()
    flood = [await Raw.open(port, "127.0.0.2")
             for port in (service.http_port, service.ws_port) for _ in range(per_ip // 2)]
    try:
        assert service.edge.budget.by_ip["127.0.0.2"] == per_ip  # both ports together
        for port in (service.http_port, service.ws_port):
            extra = await Raw.open(port, "127.0.0.2")
            assert_error(await extra.answer(), 503, "OVERLOADED")
            extra.close()
        # another address is served while the first is at its cap
        other = await Raw.open(service.http_port, "127.0.0.3")
        await other.send(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _headers, body = await other.answer()
        assert status == 200 and body["status"] == "ok"
        other.close()
        # idle connections are dropped at the head deadline, with a 408, on both ports
        for client in flood:
            assert_error(await client.answer(within=5.0), 408, "REQUEST_TIMEOUT")
        await wait_for(lambda: service.edge.budget.open == 0)
    finally:
        for client in flood:
            client.close()
    await wait_for(lambda: open_fds() <= fds)
    text = service.metrics.render().decode()
    assert 'scoreboard_edge_refusals_total{kind="cap",reason="connections_per_ip"} 2.0' in text
    assert 'scoreboard_edge_refusals_total{kind="timeout",reason="handshake"} 25.0' in text


async def test_trusted_proxies_are_exempt_and_the_access_log_names_the_client(
    edge: Callable[..., Awaitable[Service]], caplog: pytest.LogCaptureFixture
) -> None:
    service = await edge(**{"edge.max_connections_per_ip": 2,
                            "server.trusted_proxies": ["127.0.0.0/30"]})
    proxy = [await Raw.open(service.http_port, "127.0.0.2") for _ in range(4)]
    try:
        caplog.set_level("INFO", logger="scoreboard.access")
        await proxy[3].send(b"GET /health HTTP/1.1\r\nHost: x\r\n"
                            b"X-Forwarded-For: 10.9.8.7, 203.0.113.5, 127.0.0.1\r\n\r\n")
        status, _headers, _body = await proxy[3].answer()
        assert status == 200
    finally:
        for client in proxy:
            client.close()
    lines = [r for r in caplog.records if r.name == "scoreboard.access"]
    # from the right: 127.0.0.1 is trusted, 203.0.113.5 is the client; the spoofable
    # left end is not believed
    assert lines and lines[-1].remote == "203.0.113.5"  # type: ignore[attr-defined]
    assert lines[-1].peer == "127.0.0.2"  # type: ignore[attr-defined]


DUPLICATES = {
    "top level": b'{"actionType":"BOSS_DEFEAT","clientActionId":"d1",'
                 b'"actionType":"COMPLETE_LEVEL"}',
    "escaped spelling": b'{"actionType":"BOSS_DEFEAT","clientActionId":"d2",'
                        b'"\\u0061ctionType":"COMPLETE_LEVEL"}',
    "in metadata": b'{"actionType":"COMPLETE_LEVEL","clientActionId":"d3",'
                   b'"metadata":{"a":1,"a":2}}',
}


@pytest.mark.parametrize("name", list(DUPLICATES))
async def test_repeated_json_keys_are_400_and_change_nothing(
    edge: Callable[..., Awaitable[Service]], name: str
) -> None:
    service = await edge()
    client = await Raw.open(service.http_port)
    body = DUPLICATES[name]
    try:
        await client.send(action_head(service, f"Content-Length: {len(body)}") + body)
        answer = await client.answer()
    finally:
        client.close()
    assert_error(answer, 400, "INVALID_REQUEST")
    assert "more than once" in answer[2]["error"]["message"]
    assert service.engine.last_seq == 0


def action_request(service: Service, version: str, n: int, extra: str = "") -> bytes:
    body = b'{"actionType":"COMPLETE_LEVEL","clientActionId":"r%d"}' % n
    token = service.auth.mint("replier", name="Replier")
    return (f"POST {ACTIONS} HTTP/{version}\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
            ).encode() + body


SHAPES = {  # how a score action is asked: (HTTP version, extra head lines, answers)
    "keep-alive": ("1.1", "", 3),  # written as ready bytes
    "keep-alive, body apart": ("1.1", "", 2),
    "HTTP/1.0": ("1.0", "", 1),  # aiohttp's own path, which then closes
    "HTTP/1.0 keep-alive": ("1.0", "Connection: keep-alive\r\n", 2),
    "Connection: close": ("1.1", "Connection: close\r\n", 1),
}


@pytest.mark.parametrize("limited", [False, True], ids=["unlimited", "rate-limited"])
@pytest.mark.parametrize("name", list(SHAPES))
async def test_a_score_action_is_answered_alike_however_it_is_asked(
    edge: Callable[..., Awaitable[Service]], name: str, limited: bool
) -> None:
    # The accepted action's 200 goes out as ready bytes on a keep-alive HTTP/1.1
    # connection and through aiohttp's own path otherwise: the same headers either way
    # (the date and the request id aside), and a connection that stays open is usable.
    version, extra, times = SHAPES[name]
    service = await edge(**{"limits.user_per_minute": 1000 if limited else 0,
                            "limits.ip_per_minute": 0})
    client = await Raw.open(service.http_port)
    answers = []
    try:
        for n in range(times):
            request = action_request(service, version, n, extra)
            if "apart" in name:  # the body sent after the head (read as it comes)
                head, _, body = request.partition(b"\r\n\r\n")
                await client.send(head + b"\r\n\r\n")
                await client.send(body)
            else:
                await client.send(request)
            answers.append(await client.answer())
        if times == 1 and "keep-alive" not in name:
            assert await client.closed()
    finally:
        client.close()
    expected = {"content-type", "content-length", "date", "server", "x-request-id"}
    if limited:
        expected |= {"ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"}
    said = {"HTTP/1.0 keep-alive": "keep-alive", "Connection: close": "close"}.get(name)
    if said:
        expected.add("connection")
    for n, (status, headers, body) in enumerate(answers):
        assert status == 200, body
        assert set(headers) == expected
        assert headers["content-type"] == "application/json"
        assert headers.get("connection") == said
        assert body["seq"] == n + 1 and body["newScore"] == (n + 1) * body["delta"]
        assert not body["replayed"]
        if limited:
            assert headers["ratelimit-remaining"] == str(999 - n)
    assert len({h["x-request-id"] for _, h, _ in answers}) == times
