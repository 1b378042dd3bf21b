"""POST /api/v1/scores/actions/batch: trusted backends report many users at once."""

from __future__ import annotations

from typing import Any

import orjson

from tests.integration.conftest import Running, ServerFactory

BATCH = "/api/v1/scores/actions/batch"
SERVICE = ("scoreboard:service",)


def item(user: str, cid: str, action: str = "COMPLETE_LEVEL", **extra: Any) -> dict[str, Any]:
    return {"userId": user, "actionType": action, "clientActionId": cid, **extra}


async def post(server: Running, body: Any, scopes: tuple[str, ...] = SERVICE,
               **kw: Any) -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    headers = {**server.headers("backend", scopes=scopes),
               "Content-Type": "application/json", **kw.pop("headers", {})}
    async with server.http.post(f"{server.url}{BATCH}", data=data, headers=headers,
                                **kw) as r:
        return r.status, await r.json()


async def test_answers_each_action_in_order(server: Running) -> None:
    status, _ = await server.act("frosty")
    assert status == 200
    admin = server.headers("root", scopes=("scoreboard:admin",))
    async with server.http.post(f"{server.url}/api/v1/admin/users/frosty/freeze",
                                json={"reason": "test"}, headers=admin) as r:
        assert r.status == 200
    status, body = await post(server, {"actions": [
        item("amy", "a1", displayName="Amy"),
        item("bob", "b1", "WIN_MATCH", board="global", metadata={"match": 7}),
        item("amy", "a1", displayName="Amy"),  # a copy in the same batch: a replay
        item("amy", "a1", "WIN_MATCH"),  # the same key, another payload
        item("cy", "c1", "NO_SUCH_ACTION"),
        item("frosty", "f1"),
        item("amy", "once", "DAILY_LOGIN_BONUS"),
        item("amy", "twice", "DAILY_LOGIN_BONUS"),  # over the quota
    ]})
    assert status == 200
    r = body["results"]
    assert [x.get("status") for x in r] == [None, None, None, 422, 400, 403, None, 429]
    assert [x["error"]["code"] for x in r if "error" in x] == [
        "IDEMPOTENCY_CONFLICT", "UNKNOWN_ACTION", "USER_FROZEN", "QUOTA_EXCEEDED"]
    assert r[7]["retryAfter"] >= 1
    assert (r[0]["userId"], r[0]["newScore"], r[0]["replayed"]) == ("amy", 10, False)
    assert (r[2]["seq"], r[2]["replayed"]) == (r[0]["seq"], True)
    assert r[1]["newScore"] == 20 and r[6]["newScore"] == 15
    assert r[0]["seq"] < r[1]["seq"] < r[6]["seq"]  # decided in request order
    status, me = await server.get("/api/v1/users/amy/score")
    assert status == 200 and me["score"] == 15 and me["displayName"] == "Amy"


async def test_a_replayed_batch_changes_nothing(server: Running) -> None:
    batch = {"actions": [item(f"u{i}", f"c{i}") for i in range(20)]}
    status, first = await post(server, batch)
    assert status == 200
    status, again = await post(server, batch)
    assert status == 200
    assert [x["seq"] for x in again["results"]] == [x["seq"] for x in first["results"]]
    assert all(x["replayed"] for x in again["results"])
    status, board = await server.get("/api/v1/leaderboard?limit=100")
    assert board["totalUsers"] == 20 and {e["score"] for e in board["entries"]} == {10}


async def test_bad_envelopes_are_refused_whole(server: Running) -> None:
    cases: list[tuple[Any, tuple[str, ...], int, str]] = [
        ({"actions": [item("amy", "x")]}, (), 403, "FORBIDDEN"),  # a user token
        ({"actions": {"a": 1}}, SERVICE, 400, "INVALID_REQUEST"),
        ({"actions": []}, SERVICE, 400, "INVALID_REQUEST"),
        ({"actions": [item("amy", "x")], "extra": 1}, SERVICE, 400, "INVALID_REQUEST"),
        ({"actions": [item("amy", "x"), {"userId": "bob"}]}, SERVICE, 400, "INVALID_REQUEST"),
        ({"actions": [item("amy", "x"), item("bob", "y", proof="a.b.c")]}, SERVICE, 400,
         "INVALID_REQUEST"),
        ({"actions": [item("amy", "x"), "nope"]}, SERVICE, 400, "INVALID_REQUEST"),
        ({"actions": [item(f"u{i}", "x") for i in range(1001)]}, SERVICE, 400,
         "INVALID_REQUEST"),
    ]
    for body, scopes, want, code in cases:
        status, answer = await post(server, body, scopes)
        assert (status, answer["error"]["code"]) == (want, code), body
    status, answer = await post(server, {"actions": [item("amy", "x"), {"userId": "b"}]})
    assert "actions[1]" in answer["error"]["message"]
    status, board = await server.get("/api/v1/leaderboard")
    assert board["totalUsers"] == 0  # nothing of a refused batch was decided


async def test_the_batch_route_has_its_own_body_cap(start_server: ServerFactory) -> None:
    server = await start_server(**{"limits.max_body_bytes": 1024,
                                   "limits.max_batch_body_bytes": 64 * 1024})
    big = {"actions": [item(f"user-{i}", f"cid-{i:04d}") for i in range(300)]}
    assert 1024 < len(orjson.dumps(big)) < 64 * 1024
    status, body = await post(server, big)
    assert status == 200 and len(body["results"]) == 300
    status, body = await post(server, {"actions": [item("x", "y", metadata={"p": "x" * 70_000})]})
    assert (status, body["error"]["code"]) == (413, "PAYLOAD_TOO_LARGE")

    async def chunks() -> Any:  # no Content-Length: the cap is checked on what arrives
        yield b'{"actionType": "COMPLETE_LEVEL", "clientActionId": "c", "metadata": {"p": "'
        yield b"x" * 4096
        yield b'"}}'

    async with server.http.post(f"{server.url}/api/v1/scores/actions", data=chunks(),
                                headers={**server.headers("amy"),
                                         "Content-Type": "application/json"}) as r:
        assert r.status == 413 and (await r.json())["error"]["code"] == "PAYLOAD_TOO_LARGE"
