"""The HTTP API over real sockets on SQLite and PostgreSQL: happy paths and reads."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.integration.conftest import Running, ServerFactory

ACTIONS = "/api/v1/scores/actions"


async def test_action_then_board(server: Running) -> None:
    status, body = await server.act("alice", cid="a-1")
    assert status == 200, body
    assert body["userId"] == "alice" and body["delta"] == 10 and body["newScore"] == 10
    assert body["rank"] == 1 and body["replayed"] is False and body["seq"] == 1
    assert body["board"] == "global" and body["actionType"] == "COMPLETE_LEVEL"
    assert body["at"].endswith("Z")
    await server.act("bob", "WIN_MATCH", cid="b-1")
    status, board = await server.get("/api/v1/leaderboard?limit=10")
    assert status == 200
    assert [(e["rank"], e["userId"], e["displayName"], e["score"]) for e in board["entries"]] == [
        (1, "bob", "Bob", 20), (2, "alice", "Alice", 10)]
    assert board["totalUsers"] == 2 and board["board"] == "global"
    assert isinstance(board["version"], int) and board["generatedAt"]


async def test_etag_and_304(server: Running) -> None:
    await server.act("alice", cid="1")
    async with server.http.get(f"{server.url}/api/v1/leaderboard") as r:
        etag = r.headers["ETag"]
    async with server.http.get(f"{server.url}/api/v1/leaderboard",
                               headers={"If-None-Match": etag}) as r:
        assert r.status == 304
    await server.act("bob", cid="2")
    async with server.http.get(f"{server.url}/api/v1/leaderboard",
                               headers={"If-None-Match": etag}) as r:
        assert r.status == 200 and r.headers["ETag"] != etag


async def test_user_score_and_around(server: Running) -> None:
    for i in range(15):
        await server.act(f"user{i:02d}", cid=f"c{i}")
        for j in range(i):
            await server.act(f"user{i:02d}", cid=f"c{i}-{j}")
    status, me = await server.get("/api/v1/users/me/score", headers=server.headers("user00"))
    assert status == 200
    assert me["rank"] == 15 and me["score"] == 10 and me["inTop"] is False
    assert me["pointsToTop"] == 60 - 10 + 1 and me["totalUsers"] == 15
    status, top = await server.get("/api/v1/users/user14/score")
    assert status == 200 and top["rank"] == 1 and top["inTop"] and top["pointsToTop"] == 0
    status, around = await server.get("/api/v1/leaderboard/around/user07?radius=2")
    assert status == 200
    assert [e["rank"] for e in around["entries"]] == [6, 7, 8, 9, 10]
    status, mine = await server.get("/api/v1/leaderboard/around/me?radius=1",
                                    headers=server.headers("user14"))
    assert status == 200 and [e["userId"] for e in mine["entries"]] == ["user14", "user13"]
    status, err = await server.get("/api/v1/users/ghost/score")
    assert status == 404 and err["error"]["code"] == "NOT_FOUND"
    status, err = await server.get("/api/v1/leaderboard/around/me")
    assert status == 401


async def test_replay_returns_the_original(server: Running) -> None:
    _, first = await server.act("alice", cid="same")
    _, again = await server.act("alice", cid="same")
    assert again["replayed"] is True
    assert {k: again[k] for k in ("seq", "delta", "newScore", "at")} == {
        k: first[k] for k in ("seq", "delta", "newScore", "at")}
    _, board = await server.get("/api/v1/leaderboard")
    assert board["entries"][0]["score"] == 10


async def test_same_key_different_payload_is_422(server: Running) -> None:
    await server.act("alice", cid="k")
    status, body = await server.act("alice", "WIN_MATCH", cid="k")
    assert status == 422 and body["error"]["code"] == "IDEMPOTENCY_CONFLICT"
    _, board = await server.get("/api/v1/leaderboard")
    assert board["entries"][0]["score"] == 10


async def test_100_concurrent_copies_make_one_increment(server: Running) -> None:
    results = await asyncio.gather(*(server.act("alice", cid="dup") for _ in range(100)))
    assert all(status == 200 for status, _ in results), results[:3]
    bodies = [b for _, b in results]
    assert {(b["seq"], b["newScore"], b["delta"], b["at"]) for b in bodies} == {
        (1, 10, 10, bodies[0]["at"])}
    assert sum(1 for b in bodies if not b["replayed"]) == 1
    _, board = await server.get("/api/v1/leaderboard")
    assert board["entries"][0]["score"] == 10 and board["totalUsers"] == 1


async def test_quota_exceeded_with_retry_after(server: Running) -> None:
    status, _ = await server.act("alice", "DAILY_LOGIN_BONUS", cid="d1")
    assert status == 200
    async with server.http.post(
        f"{server.url}{ACTIONS}", json={"actionType": "DAILY_LOGIN_BONUS", "clientActionId": "d2"},
        headers=server.headers("alice"),
    ) as r:
        body = await r.json()
        assert r.status == 429 and body["error"]["code"] == "QUOTA_EXCEEDED"
        assert int(r.headers["Retry-After"]) > 86000
        # the quota window, in the RateLimit-* headers the README promises
        assert r.headers["RateLimit-Limit"] == "1"
        assert r.headers["RateLimit-Remaining"] == "0"
        assert r.headers["RateLimit-Reset"] == r.headers["Retry-After"]


async def test_restart_keeps_everything(start_server: ServerFactory) -> None:
    first = await start_server()
    for i in range(5):
        await first.act(f"u{i}", cid=f"c{i}")
    await first.act("u0", "WIN_MATCH", cid="w")
    await first.act("u3", "DAILY_LOGIN_BONUS", cid="d")
    _, before = await first.get("/api/v1/leaderboard")
    await first.stop()
    second = await start_server()
    _, after = await second.get("/api/v1/leaderboard")
    assert after["entries"] == before["entries"] and after["totalUsers"] == 5
    # versions never go back, so an ETag or Last-Event-ID from before cannot match new data
    assert after["version"] >= before["version"] == 7
    # idempotency keys and quota windows survived
    status, body = await second.act("u0", "WIN_MATCH", cid="w")
    assert status == 200 and body["replayed"] is True
    status, body = await second.act("u3", "DAILY_LOGIN_BONUS", cid="d-again")
    assert status == 429 and body["error"]["code"] == "QUOTA_EXCEEDED"
    status, body = await second.act("u4", cid="c-new")
    assert status == 200 and body["seq"] == 8


async def test_health_ready_metrics(server: Running) -> None:
    assert (await server.get("/health"))[0] == 200
    status, ready = await server.get("/ready")
    assert status == 200 and ready["status"] == "ready"
    await server.act("alice", cid="m1")
    async with server.http.get(f"{server.url}/metrics") as r:
        text = await r.text()
    assert 'scoreboard_actions_total{result="ACCEPTED"} 1.0' in text
    assert 'scoreboard_board_users{board="global"} 1.0' in text


async def test_request_id_is_echoed_or_generated(server: Running) -> None:
    async with server.http.get(f"{server.url}/api/v1/nope",
                               headers={"X-Request-ID": "abc-123"}) as r:
        body = await r.json()
        assert r.status == 404 and r.headers["X-Request-ID"] == "abc-123"
        assert body["error"]["requestId"] == "abc-123"
    async with server.http.get(f"{server.url}/health") as r:
        assert len(r.headers["X-Request-ID"]) >= 8


async def test_private_board_needs_a_token(start_server: ServerFactory) -> None:
    server = await start_server(**{"leaderboard.public": False})
    status, body = await server.get("/api/v1/leaderboard")
    assert status == 401 and body["error"]["code"] == "UNAUTHORIZED"
    status, _ = await server.get("/api/v1/leaderboard", headers=server.headers("alice"))
    assert status == 200


async def test_rate_limits_per_user(start_server: ServerFactory) -> None:
    server = await start_server(**{"limits.user_per_minute": 3})
    statuses = []
    for i in range(4):
        async with server.http.post(
            f"{server.url}{ACTIONS}", json={"actionType": "COMPLETE_LEVEL",
                                            "clientActionId": f"r{i}"},
            headers=server.headers("alice"),
        ) as r:
            statuses.append(r.status)
            last = r
            body = await r.json()
    assert statuses == [200, 200, 200, 429]
    assert body["error"]["code"] == "RATE_LIMITED"
    assert last.headers["RateLimit-Limit"] == "3" and last.headers["RateLimit-Remaining"] == "0"
    assert int(last.headers["Retry-After"]) >= 1 and "RateLimit-Reset" in last.headers
    # another user is not affected
    status, _ = await server.act("bob", cid="b")
    assert status == 200


async def test_overloaded_queue_answers_503(start_server: ServerFactory) -> None:
    server = await start_server(**{"writer.queue_size": 1, "writer.max_batch": 1})
    results = await asyncio.gather(
        *(server.act(f"u{i}", cid=f"c{i}") for i in range(40)), return_exceptions=True
    )
    statuses = [r[0] for r in results if isinstance(r, tuple)]
    assert 503 in statuses and 200 in statuses
    overloaded = [b for s, b in results if isinstance(b, dict) and s == 503]  # type: ignore[misc]
    assert overloaded[0]["error"]["code"] == "OVERLOADED"
    _, board = await server.get("/api/v1/leaderboard?limit=100")
    assert board["totalUsers"] == statuses.count(200)


async def test_client_disconnect_does_not_break_the_writer(server: Running) -> None:
    timeout = aiohttp.ClientTimeout(total=0.0001)
    try:
        async with server.http.post(
            f"{server.url}{ACTIONS}", json={"actionType": "COMPLETE_LEVEL", "clientActionId": "x"},
            headers=server.headers("alice"), timeout=timeout,
        ):
            pass
    except (TimeoutError, aiohttp.ClientError):
        pass
    status, body = await server.act("alice", cid="x")
    assert status == 200 and body["newScore"] == 10


async def test_verify_reads_beside_a_running_server(
    server: Running, capsys: pytest.CaptureFixture[str]
) -> None:
    from scoreboard.storage.verify import verify

    for i in range(5):
        assert (await server.act(f"u{i % 2}", cid=f"v{i}"))[0] == 200
    # the server holds the writer lock (a lock file or an advisory lock) all along
    assert await verify(server.settings) == 0
    assert "OK: 5 records replayed; 2 ranked users" in capsys.readouterr().out
    assert (await server.act("u9", cid="after"))[0] == 200  # still the writer
