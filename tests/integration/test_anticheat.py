"""Action proofs, frozen users, the admin API, abuse flags and privacy over real sockets."""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

import jwt
import orjson
import pytest

from tests.integration.conftest import PROOF_SECRET, SECRET, Running, ServerFactory

ACTIONS = "/api/v1/scores/actions"
ADMIN = "scoreboard:admin"
SERVICE = "scoreboard:service"


def proof(sub: str = "alice", act: str = "BOSS_DEFEAT", jti: str = "n-1", ttl: int = 60,
          key: str = PROOF_SECRET, **extra: Any) -> str:
    claims = {"sub": sub, "act": act, "jti": jti, "exp": int(time.time()) + ttl, **extra}
    return jwt.encode(claims, key, algorithm="HS256")


async def boss(server: Running, token: str | None, cid: str, sub: str = "alice"
               ) -> tuple[int, dict[str, Any]]:
    body: dict[str, Any] = {"actionType": "BOSS_DEFEAT", "clientActionId": cid}
    if token is not None:
        body["proof"] = token
    async with server.http.post(f"{server.url}{ACTIONS}", json=body,
                                headers=server.headers(sub, sub.title())) as r:
        return r.status, await r.json()


def tamper(token: str) -> str:
    head, body, sig = token.split(".")
    claims = orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims["act"] = "BOSS_DEFEAT"
    claims["sub"] = "alice"
    forged = base64.urlsafe_b64encode(orjson.dumps(claims)).rstrip(b"=").decode()
    return f"{head}.{forged}.{sig}"


BAD_PROOFS = {
    "none": lambda: None,
    "forged with the user-token key": lambda: proof(key=SECRET),
    "forged with another key": lambda: proof(key="x" * 40),
    "expired": lambda: proof(ttl=-120),
    "for another user": lambda: proof(sub="mallory"),
    "for another action": lambda: proof(act="COMPLETE_LEVEL"),
    "tampered": lambda: tamper(proof(sub="mallory", act="COMPLETE_LEVEL")),
    "lives too long": lambda: proof(ttl=86400),
    "not a token": lambda: "abc.def.ghi",
    "no jti": lambda: jwt.encode({"sub": "alice", "act": "BOSS_DEFEAT",
                                  "exp": int(time.time()) + 60}, PROOF_SECRET, algorithm="HS256"),
}


@pytest.mark.parametrize("name", list(BAD_PROOFS))
async def test_bad_proofs_are_refused(server: Running, name: str) -> None:
    status, body = await boss(server, BAD_PROOFS[name](), "b-1")
    assert (status, body["error"]["code"]) == (403, "PROOF_INVALID")
    assert server.service.engine.last_seq == 0
    assert (await server.get("/api/v1/leaderboard"))[1]["totalUsers"] == 0


async def test_a_proof_is_accepted_once_even_concurrently(start_server: ServerFactory) -> None:
    server = await start_server()
    status, body = await boss(server, proof(jti="once"), "b-1")
    assert status == 200 and body["delta"] == 100
    status, body = await boss(server, proof(jti="once"), "b-2")
    assert (status, body["error"]["code"]) == (409, "PROOF_REUSED")
    token = proof(jti="race")
    results = await asyncio.gather(*(boss(server, token, f"r-{i}") for i in range(20)))
    assert sorted(s for s, _ in results) == [200] + [409] * 19
    assert (await server.get("/api/v1/users/alice/score"))[1]["score"] == 200
    await server.stop()
    again = await start_server()
    status, body = await boss(again, proof(jti="once"), "b-3")
    assert (status, body["error"]["code"]) == (409, "PROOF_REUSED")
    status, body = await boss(again, token, "r-x")
    assert status == 409
    assert (await again.get("/api/v1/users/alice/score"))[1]["score"] == 200


async def test_proofs_from_the_service_endpoint(server: Running) -> None:
    async with server.http.post(f"{server.url}/api/v1/proofs",
                                json={"userId": "alice", "actionType": "BOSS_DEFEAT"},
                                headers=server.headers("game-backend", scopes=(SERVICE,))) as r:
        assert r.status == 200
        minted = await r.json()
    status, body = await boss(server, minted["proof"], "b-1")
    assert status == 200 and body["newScore"] == 100
    for scopes in ((), (ADMIN,)):
        async with server.http.post(f"{server.url}/api/v1/proofs",
                                    json={"userId": "alice", "actionType": "BOSS_DEFEAT"},
                                    headers=server.headers("alice", scopes=scopes)) as r:
            assert r.status == 403 and (await r.json())["error"]["code"] == "FORBIDDEN"


ADMIN_ROUTES = [
    ("POST", "/api/v1/admin/users/alice/adjustments",
     {"delta": 5, "reason": "x", "clientActionId": "a"}),
    ("POST", "/api/v1/admin/users/alice/freeze", {"reason": "x"}),
    ("POST", "/api/v1/admin/users/alice/unfreeze", {"reason": "x"}),
    ("POST", "/api/v1/admin/users/alice/unflag", {"reason": "x"}),
    ("GET", "/api/v1/admin/users/alice/history", None),
    ("GET", "/api/v1/admin/flags", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ROUTES,
                         ids=[p.rsplit("/", 1)[1] for _, p, _ in ADMIN_ROUTES])
async def test_user_tokens_get_403_on_admin_routes(server: Running, method: str, path: str,
                                                   body: Any) -> None:
    await server.act("alice", cid="c")
    async with server.http.request(method, f"{server.url}{path}", json=body,
                                   headers=server.headers("alice")) as r:
        assert r.status == 403 and (await r.json())["error"]["code"] == "FORBIDDEN"
    async with server.http.request(method, f"{server.url}{path}", json=body) as r:
        assert r.status == 401
    assert server.service.engine.last_seq == 1


async def admin(server: Running, method: str, path: str, body: Any = None
                ) -> tuple[int, dict[str, Any]]:
    async with server.http.request(method, f"{server.url}/api/v1/admin{path}", json=body,
                                   headers=server.headers("ops", scopes=(ADMIN,))) as r:
        return r.status, await r.json()


async def test_adjust_freeze_history_survive_restart(start_server: ServerFactory) -> None:
    server = await start_server()
    await server.act("alice", cid="c1")
    await server.act("bob", "WIN_MATCH", cid="c2")
    status, adj = await admin(server, "POST", "/users/alice/adjustments",
                              {"delta": 25, "reason": "tournament prize", "clientActionId": "p1"})
    assert status == 200 and adj["newScore"] == 35 and adj["rank"] == 1
    status, again = await admin(server, "POST", "/users/alice/adjustments",
                                {"delta": 25, "reason": "tournament prize",
                                 "clientActionId": "p1"})
    assert status == 200 and again["replayed"] and again["seq"] == adj["seq"]
    status, _ = await admin(server, "POST", "/users/alice/adjustments",
                              {"delta": 5, "clientActionId": "p2"})
    assert status == 400
    status, frozen = await admin(server, "POST", "/users/bob/freeze", {"reason": "botting"})
    assert status == 200 and frozen["frozen"] is True
    _, board = await server.get("/api/v1/leaderboard")
    assert [e["userId"] for e in board["entries"]] == ["alice"]
    assert (await server.get("/api/v1/users/bob/score"))[0] == 404
    status, body = await server.act("bob", cid="c3")
    assert (status, body["error"]["code"]) == (403, "USER_FROZEN")
    status, _ = await admin(server, "POST", "/users/nobody/freeze", {"reason": "x"})
    assert status == 404
    await server.stop()

    server = await start_server()
    _, board = await server.get("/api/v1/leaderboard")
    assert [(e["userId"], e["score"]) for e in board["entries"]] == [("alice", 35)]
    status, hist = await admin(server, "GET", "/users/alice/history?limit=1")
    assert status == 200 and hist["records"][0]["kind"] == "adjust"
    assert hist["records"][0]["actor"] == "ops"
    assert hist["records"][0]["reason"] == "tournament prize"
    status, older = await admin(server, "GET",
                                f"/users/alice/history?limit=1&cursor={hist['nextCursor']}")
    assert older["records"][0]["kind"] == "action" and older["nextCursor"] is not None
    status, last = await admin(server, "GET",
                               f"/users/alice/history?limit=1&cursor={older['nextCursor']}")
    assert last["records"] == [] and last["nextCursor"] is None
    _, bob = await admin(server, "GET", "/users/bob/history")
    assert [r["kind"] for r in bob["records"]] == ["freeze", "action"]
    freeze = bob["records"][0]  # the score as it stood, not 0
    assert (freeze["prevScore"], freeze["newScore"], freeze["delta"]) == (20, 20, 0)
    status, _ = await admin(server, "POST", "/users/bob/unfreeze", {"reason": "appeal"})
    _, board = await server.get("/api/v1/leaderboard")
    assert [(e["userId"], e["score"]) for e in board["entries"]] == [("alice", 35), ("bob", 20)]


async def test_adjusting_a_user_never_seen_needs_create(server: Running) -> None:
    await server.act("alice", cid="c1")
    body = {"delta": 5, "reason": "prize", "clientActionId": "p1"}
    status, refused = await admin(server, "POST", "/users/alcie/adjustments", body)
    assert (status, refused["error"]["code"]) == (404, "NOT_FOUND")
    assert '"create": true' in refused["error"]["message"]
    assert (await server.get("/api/v1/leaderboard"))[1]["totalUsers"] == 1
    status, bad = await admin(server, "POST", "/users/newcomer/adjustments",
                              {**body, "create": "yes"})
    assert (status, bad["error"]["code"]) == (400, "INVALID_REQUEST")
    status, made = await admin(server, "POST", "/users/newcomer/adjustments",
                               {**body, "create": True})
    assert status == 200 and made["newScore"] == 5
    status, known = await admin(server, "POST", "/users/alice/adjustments",
                                {**body, "clientActionId": "p2"})
    assert status == 200 and known["newScore"] == 15


async def test_a_proof_may_name_its_board(start_server: ServerFactory) -> None:
    server = await start_server(**{"leaderboard.boards": ["global", "weekly"]})
    service = server.headers("game-backend", scopes=(SERVICE,))

    async def mint(**extra: Any) -> tuple[int, dict[str, Any]]:
        async with server.http.post(f"{server.url}/api/v1/proofs", headers=service,
                                    json={"userId": "alice", "actionType": "BOSS_DEFEAT",
                                          **extra}) as r:
            return r.status, await r.json()

    status, minted = await mint(board="weekly")
    assert status == 200 and minted["board"] == "weekly"
    token = minted["proof"]
    async with server.http.post(f"{server.url}{ACTIONS}", headers=server.headers("alice"),
                                json={"actionType": "BOSS_DEFEAT", "clientActionId": "b1",
                                      "proof": token}) as r:
        refused = await r.json()
        assert (r.status, refused["error"]["code"]) == (403, "PROOF_INVALID")
    assert "'weekly'" in refused["error"]["message"]
    assert "'global'" in refused["error"]["message"]
    assert server.service.engine.last_seq == 0
    async with server.http.post(f"{server.url}{ACTIONS}", headers=server.headers("alice"),
                                json={"actionType": "BOSS_DEFEAT", "clientActionId": "b2",
                                      "board": "weekly", "proof": token}) as r:
        assert r.status == 200 and (await r.json())["board"] == "weekly"
    status, body = await boss(server, proof(jti="g", board="weekly"), "b3")
    assert (status, body["error"]["code"]) == (403, "PROOF_INVALID")
    status, body = await boss(server, proof(jti="g", board="global"), "b4")
    assert status == 200
    status, unknown = await mint(board="nowhere")
    assert (status, unknown["error"]["code"]) == (404, "NOT_FOUND")
    status, _ = await mint()
    assert status == 200 and "board" not in _


async def test_abuse_flag_trips_at_its_threshold(start_server: ServerFactory) -> None:
    server = await start_server(**{"abuse.actions_per_minute": 3, "abuse.auto_freeze": True})
    for i in range(3):
        assert (await server.act("spammer", cid=f"s{i}"))[0] == 200
    _, flags = await admin(server, "GET", "/flags")
    assert flags["flags"] == []
    assert (await server.act("spammer", cid="s3"))[0] == 200  # the 4th crosses the line
    _, flags = await admin(server, "GET", "/flags")
    assert [(f["userId"], f["frozen"]) for f in flags["flags"]] == [("spammer", True)]
    assert "4 actions" in flags["flags"][0]["reason"]
    status, body = await server.act("spammer", cid="s4")
    assert (status, body["error"]["code"]) == (403, "USER_FROZEN")
    await server.stop()
    server = await start_server(**{"abuse.actions_per_minute": 3, "abuse.auto_freeze": True})
    _, flags = await admin(server, "GET", "/flags")
    assert [f["userId"] for f in flags["flags"]] == ["spammer"]
    await admin(server, "POST", "/users/spammer/unflag", {"reason": "reviewed"})
    _, flags = await admin(server, "GET", "/flags")
    assert flags["flags"] == []


async def test_privacy_hides_the_name_but_not_the_audit(server: Running) -> None:
    await server.act("alice", cid="c1")
    async with server.http.put(f"{server.url}/api/v1/users/me/privacy", json={"hideName": True},
                               headers=server.headers("alice")) as r:
        assert r.status == 200 and (await r.json())["hidden"] is True
    _, board = await server.get("/api/v1/leaderboard")
    assert board["entries"][0]["displayName"] == "Anonymous"
    _, hist = await admin(server, "GET", "/users/alice/history")
    assert hist["records"][-1]["displayName"] == "Alice"
    async with server.http.put(f"{server.url}/api/v1/users/me/privacy",
                               json={"hideName": "yes"}, headers=server.headers("alice")) as r:
        assert r.status == 400
    async with server.http.put(f"{server.url}/api/v1/users/me/privacy", json={"hideName": False},
                               headers=server.headers("alice")) as r:
        assert r.status == 200
    _, board = await server.get("/api/v1/leaderboard")
    assert board["entries"][0]["displayName"] == "Alice"


async def test_admin_changes_reach_live_viewers(server: Running) -> None:
    from tests.integration.test_live_ws import recv, users, viewer

    await server.act("alice", "WIN_MATCH", cid="a1")
    await server.act("bob", cid="b1")
    async with viewer(server, limit=5) as (ws, first):
        assert users(first) == ["alice", "bob"]
        await admin(server, "POST", "/users/bob/adjustments",
                    {"delta": 15, "reason": "bonus", "clientActionId": "adj"})
        update = (await recv(ws))["data"]
        assert users(update) == ["bob", "alice"] and update["top"][0]["score"] == 25
        await admin(server, "POST", "/users/bob/freeze", {"reason": "cheating"})
        update = (await recv(ws))["data"]
        assert users(update) == ["alice"]
        await admin(server, "POST", "/users/bob/unfreeze", {"reason": "appeal"})
        update = (await recv(ws))["data"]
        assert users(update) == ["bob", "alice"]
        async with server.http.put(f"{server.url}/api/v1/users/me/privacy",
                                   json={"hideName": True}, headers=server.headers("bob")) as r:
            assert r.status == 200
        update = (await recv(ws))["data"]
        assert update["top"][0]["displayName"] == "Anonymous"
