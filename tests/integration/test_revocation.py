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
