"""Revocation ("log out everywhere") over real sockets: HTTP, WebSocket and SSE, and
across a restart (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import jwt
import orjson
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from scoreboard.auth.tokens import Principal
from scoreboard.live.sessions import LiveSessions
from tests.integration.conftest import SECRET, Running, ServerFactory

WAIT = 5.0
ME = "/api/v1/users/me/score"


def revoke_path(user: str) -> str:
    return f"/api/v1/admin/users/{user}/revoke-tokens"


async def status(r: Running, token: str) -> int:
    async with r.http.get(f"{r.url}{ME}", headers={"Authorization": f"Bearer {token}"}) as resp:
        await resp.read()
        return resp.status


async def revoke(r: Running, user: str) -> dict[str, Any]:
    admin = r.headers("root", scopes=(r.settings.auth.admin_scope,))
    async with r.http.post(f"{r.url}{revoke_path(user)}", json={"reason": "stolen laptop"},
                           headers=admin) as resp:
        body: dict[str, Any] = await resp.json()
        assert resp.status == 200, body
        return body


def no_iat_token(sub: str) -> str:
    return jwt.encode({"sub": sub, "exp": int(time.time()) + 600}, SECRET, algorithm="HS256")


async def test_revoked_tokens_are_refused_and_stay_refused_after_a_restart(
    start_server: ServerFactory,
) -> None:
    r = await start_server()
    before = time.time() - 5
    old = r.service.auth.mint("alice", name="Alice", now=before)
    status_code, _ = await r.act("alice")
    assert status_code == 200
    assert await status(r, old) == 200  # verified, and now in the claims cache
    reader = r.service.auth.mint("bob", now=before)  # a user with no score at all
    assert await status(r, reader) == 404
    body = await revoke(r, "alice")
    assert body["userId"] == "alice" and body["tokensRevokedAt"] == body["at"]
    await revoke(r, "bob")
    after = time.time() + 1
    fresh = r.service.auth.mint("alice", now=after)
    assert await status(r, old) == 401  # the cached claims did not outlive it
    assert await status(r, no_iat_token("alice")) == 401
    assert await status(r, reader) == 401
    assert await status(r, fresh) == 200
    assert await status(r, r.service.auth.mint("carol", now=before)) == 404  # others unaffected
    admin = r.headers("root", scopes=(r.settings.auth.admin_scope,))
    async with r.http.get(f"{r.url}/api/v1/admin/users/alice/history", headers=admin) as resp:
        kinds = [rec["kind"] for rec in (await resp.json())["records"]]
    assert kinds[0] == "revoke_tokens"

    await r.stop()
    r2 = await start_server()
    assert await status(r2, old) == 401
    assert await status(r2, reader) == 401
    assert await status(r2, fresh) == 200


async def test_revocation_closes_live_connections_using_old_tokens(
    start_server: ServerFactory,
) -> None:
    r = await start_server()
    auth = r.service.auth
    old = auth.mint("alice", now=time.time() - 5)
    later = auth.mint("alice", now=time.time() + 5)  # issued after the revocation below
    ws_url = f"ws://127.0.0.1:{r.service.ws_port}/api/v1/leaderboard/live"
    sse_url = f"{r.url}/api/v1/leaderboard/stream"
    async with connect(f"{ws_url}?token={old}") as ws, \
            connect(f"{ws_url}?token={later}") as survivor, \
            r.http.get(sse_url, headers={"Authorization": f"Bearer {old}"},
                       timeout=aiohttp.ClientTimeout(total=None, sock_read=None)) as sse:
        for socket in (ws, survivor):
            assert orjson.loads(await socket.recv())["type"] == "CONNECTION_ACK"
            assert orjson.loads(await socket.recv())["type"] == "LEADERBOARD_UPDATE"
        assert sse.status == 200
        await asyncio.wait_for(sse.content.readuntil(b"event: leaderboard"), WAIT)

        await revoke(r, "alice")

        async with asyncio.timeout(WAIT):
            message = orjson.loads(await ws.recv())
            assert message["type"] == "ERROR" and message["data"]["code"] == "UNAUTHORIZED"
            try:
                await ws.recv()
            except ConnectionClosed as closed:
                assert closed.rcvd is not None and closed.rcvd.code == 1008
            else:
                raise AssertionError("the revoked socket stayed open")
            rest = await sse.content.read()  # returns at the end of the stream
        assert b"event: leaderboard" not in rest
        assert r.service.live.sessions.closed == 2
        pong = await survivor.ping()  # still open: its token was issued later
        await asyncio.wait_for(pong, WAIT)


# -- sessions end: expiry and revocation of every long-lived connection ------------------

EVENTS = "/api/v1/events"
NO_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_read=None)


def service_token(r: Running, sub: str, **kw: Any) -> str:
    return r.service.auth.mint(sub, scopes=(r.settings.auth.service_scope,), **kw)


def sse_headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}


async def sse_ending(response: aiohttp.ClientResponse) -> tuple[dict[str, Any], bytes]:
    """Read an SSE response up to its `error` event; returns that event's data and
    whatever the stream sends after it (nothing, if it ended there)."""
    while True:
        block = await response.content.readuntil(b"\n\n")
        assert block.endswith(b"\n\n"), f"the stream ended without an error event: {block!r}"
        lines = dict(line.split(": ", 1) for line in block.decode().split("\n")
                     if ": " in line and not line.startswith(":"))
        if lines.get("event") == "error":
            assert "id" not in lines  # not a position: Last-Event-ID stays the last record
            return orjson.loads(lines["data"]), await response.content.read()


async def ws_ending(socket: Any) -> tuple[dict[str, Any], int, str]:
    """Read a WebSocket up to its ERROR message and close: (data, close code, reason)."""
    while True:
        message = orjson.loads(await socket.recv())
        if message["type"] == "ERROR":
            break
    try:
        await socket.recv()
    except ConnectionClosed as closed:
        assert closed.rcvd is not None
        return message["data"], closed.rcvd.code, closed.rcvd.reason
    raise AssertionError("the socket stayed open after its ERROR")


async def test_an_expiring_token_ends_every_long_lived_connection(
    start_server: ServerFactory,
) -> None:
    r = await start_server(**{"auth.leeway_seconds": 1})
    auth, sessions = r.service.auth, r.service.live.sessions
    user = auth.mint("alice", ttl=2)
    service = service_token(r, "consumer", ttl=2)
    last_valid = jwt.decode(user, options={"verify_signature": False})["exp"] + 1  # leeway
    expired = {"code": "UNAUTHORIZED", "message": "the token expired"}
    ws_url = f"ws://127.0.0.1:{r.service.ws_port}/api/v1/leaderboard/live?token={user}"
    async with connect(ws_url) as ws, \
            r.http.get(f"{r.url}/api/v1/leaderboard/stream", headers=sse_headers(user),
                       timeout=NO_TIMEOUT) as sse, \
            r.http.get(f"{r.url}{EVENTS}", headers=sse_headers(service),
                       timeout=NO_TIMEOUT) as events:
        assert (sse.status, events.status) == (200, 200)
        assert sessions.open == 3
        async with asyncio.timeout(WAIT + 3):
            ws_end, sse_end, events_end = await asyncio.gather(
                ws_ending(ws), sse_ending(sse), sse_ending(events))
        ended_at = time.time()
    assert ws_end == (expired, 1008, "the token expired")
    assert sse_end == (expired, b"") and events_end == (expired, b"")
    assert ended_at >= last_valid - 0.05  # not before the leeway has passed
    assert sessions.expired == 3 and sessions.closed == 0 and sessions.open == 0


async def test_revoking_a_service_token_ends_an_open_events_stream(server: Running) -> None:
    r = server
    old = service_token(r, "consumer", now=time.time() - 5)
    other = service_token(r, "other-consumer", now=time.time() - 5)
    async with r.http.get(f"{r.url}{EVENTS}", headers=sse_headers(old),
                          timeout=NO_TIMEOUT) as stream, \
            r.http.get(f"{r.url}{EVENTS}", headers=sse_headers(other),
                       timeout=NO_TIMEOUT) as survivor:
        assert (stream.status, survivor.status) == (200, 200)
        await asyncio.wait_for(stream.content.readuntil(b"\n\n"), WAIT)  # the retry hint
        await revoke(r, "consumer")
        data, rest = await asyncio.wait_for(sse_ending(stream), WAIT)
        assert data == {"code": "UNAUTHORIZED", "message": "the token was revoked"}
        assert rest == b""
        # the other consumer goes on: the revocation record reaches it like any other
        await asyncio.wait_for(survivor.content.readuntil(b"event: revoke_tokens"), WAIT)
    assert r.service.live.sessions.closed == 1


async def test_the_events_page_refuses_an_expired_or_revoked_token(server: Running) -> None:
    token = service_token(server, "consumer", now=time.time() - 5)
    page = f"{EVENTS}?after=0"
    status, _ = await server.get(page, headers={"Authorization": f"Bearer {token}"})
    assert status == 200
    await revoke(server, "consumer")
    status, body = await server.get(page, headers={"Authorization": f"Bearer {token}"})
    assert (status, body["error"]["code"], body["error"]["message"]) == (
        401, "UNAUTHORIZED", "token has been revoked")
    leeway = server.settings.auth.leeway_seconds
    stale = service_token(server, "reader", ttl=10, now=time.time() - leeway - 20)
    status, body = await server.get(page, headers={"Authorization": f"Bearer {stale}"})
    assert (status, body["error"]["message"]) == (401, "token has expired")


async def test_a_session_that_ends_first_cancels_its_expiry_timer() -> None:
    sessions = LiveSessions(0.0, clock=lambda: 1000.0)
    principal = Principal("alice", None, frozenset(), exp=1000.0, iat=999.0)
    gone: list[str] = []
    kept = asyncio.Event()
    early = sessions.add(principal, gone.append)  # due at once, but the connection ends
    sessions.add(principal, lambda why: kept.set())  # due at once, just after `early`
    sessions.remove(early)
    await asyncio.wait_for(kept.wait(), WAIT)
    assert gone == [] and sessions.expired == 1 and sessions.open == 0
