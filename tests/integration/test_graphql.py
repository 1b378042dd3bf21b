"""GraphQL at /graphql over real sockets: the reads, the reportAction mutation (same
idempotency and error codes as REST), the live subscription over graphql-transport-ws,
the document caps, and the switch."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import aiohttp
import jwt
import pytest

from scoreboard.app import GRAPHQL_TASK
from scoreboard.graphql.deferred import GRAPHQL_PATH, DeferredEndpoint
from tests.integration.conftest import PROOF_SECRET, Running, ServerFactory, wait_for
from tests.integration.test_boards_api import call, closed_cup, scores

TOP = "{ leaderboard(limit: 10) { board totalUsers version entries { rank userId score } } }"
REPORT = """mutation($a: String!, $c: String!, $p: String, $m: JSON) {
  reportAction(actionType: $a, clientActionId: $c, proof: $p, metadata: $m) {
    userId delta newScore rank replayed seq at } }"""


async def gql(server: Running, query: str, user: str | None = None,
              status: int = 200, **variables: Any) -> dict[str, Any]:
    headers = server.headers(user, user.title()) if user else {}
    async with server.http.post(f"{server.url}{GRAPHQL_PATH}", headers=headers,
                                json={"query": query, "variables": variables}) as r:
        body: dict[str, Any] = await r.json()
        assert r.status == status, body
        return body


def codes(body: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in body.get("errors", [])]


async def report(server: Running, user: str, action: str, cid: str,
                 **more: Any) -> dict[str, Any]:
    return await gql(server, REPORT, user, a=action, c=cid, **more)


async def test_reads_answer_as_rest_does(server: Running) -> None:
    for who, n in (("alice", 3), ("bob", 1), ("carol", 2)):
        for i in range(n):
            assert (await server.act(who, cid=f"{who}-{i}"))[0] == 200
    body = await gql(server, TOP)
    status, rest = await server.get("/api/v1/leaderboard?limit=10")
    assert status == 200
    lb = body["data"]["leaderboard"]
    assert [e["userId"] for e in lb["entries"]] == ["alice", "carol", "bob"]
    assert lb["entries"] == [{k: e[k] for k in ("rank", "userId", "score")}
                             for e in rest["entries"]]
    assert lb["totalUsers"] == 3 and lb["version"] == rest["version"]

    body = await gql(server, '{ score(userId: "carol") { rank score inTop pointsToTop } '
                             'around(userId: "bob", radius: 1) { entries { userId } } '
                             'boards { name totalUsers } }')
    assert body["data"]["score"] == {"rank": 2, "score": 20, "inTop": True, "pointsToTop": 0}
    assert [e["userId"] for e in body["data"]["around"]["entries"]] == ["carol", "bob"]
    assert {"name": "global", "totalUsers": 3} in body["data"]["boards"]

    # a friends list: in rank order, unknown ids left out
    body = await gql(server, '{ users(ids: ["bob", "nobody", "alice"]) { rank userId } }')
    assert body["data"]["users"] == [{"rank": 1, "userId": "alice"},
                                     {"rank": 3, "userId": "bob"}]
    me = await gql(server, "{ score { userId score } }", "bob")
    assert me["data"]["score"] == {"userId": "bob", "score": 10}


async def test_privacy_is_the_same_as_on_rest(server: Running) -> None:
    await server.act("alice", cid="a1")
    await server.act("bob", cid="b1")
    async with server.http.put(f"{server.url}/api/v1/users/me/privacy",
                               json={"hideName": True}, headers=server.headers("alice")) as r:
        assert r.status == 200
    top = (await gql(server, TOP))["data"]["leaderboard"]["entries"]
    pseudonym = top[0]["userId"]
    assert pseudonym.startswith("anon-") and "alice" not in str(top)
    # a hidden user's real id is a user who is not there, except to themselves
    body = await gql(server, '{ score(userId: "alice") { score } }', "bob")
    assert codes(body) == ["NOT_FOUND"] and body["data"] is None
    assert body["errors"][0]["extensions"]["status"] == 404
    mine = await gql(server, '{ score(userId: "alice") { userId } }', "alice")
    assert mine["data"]["score"]["userId"] == "alice"
    found = await gql(server, f'{{ score(userId: "{pseudonym}") {{ userId score }} }}')
    assert found["data"]["score"] == {"userId": pseudonym, "score": 10}
    friends = await gql(server, f'{{ users(ids: ["alice", "{pseudonym}", "bob"]) '
                                '{ userId } }', "bob")
    assert friends["data"]["users"] == [{"userId": pseudonym}, {"userId": "bob"}]


async def test_report_action_is_exactly_once(server: Running) -> None:
    first = await report(server, "alice", "COMPLETE_LEVEL", "gq-1", m={"level": 3})
    again = await report(server, "alice", "COMPLETE_LEVEL", "gq-1", m={"level": 3})
    assert first["data"]["reportAction"]["replayed"] is False
    assert again["data"]["reportAction"]["replayed"] is True
    assert again["data"]["reportAction"]["seq"] == first["data"]["reportAction"]["seq"]
    status, score = await server.get("/api/v1/users/alice/score")
    assert status == 200 and score["score"] == 10
    # the same id with another payload: as REST, 422's code
    other = await report(server, "alice", "WIN_MATCH", "gq-1")
    assert codes(other) == ["IDEMPOTENCY_CONFLICT"]
    # and the REST endpoint sees the GraphQL report as the same action
    status, rest = await server.act("alice", cid="gq-1", metadata={"level": 3})
    assert status == 200 and rest["replayed"] is True


async def test_report_action_errors_carry_the_rest_codes(server: Running) -> None:
    body = await gql(server, REPORT, a="COMPLETE_LEVEL", c="x")
    assert codes(body) == ["UNAUTHORIZED"]
    assert body["errors"][0]["extensions"]["status"] == 401
    assert codes(await report(server, "alice", "NO_SUCH_THING", "u-1")) == ["UNKNOWN_ACTION"]
    assert (await report(server, "alice", "DAILY_LOGIN_BONUS", "d-1"))["data"]
    quota = await report(server, "alice", "DAILY_LOGIN_BONUS", "d-2")
    assert codes(quota) == ["QUOTA_EXCEEDED"]
    assert quota["errors"][0]["extensions"]["status"] == 429
    assert codes(await report(server, "alice", "BOSS_DEFEAT", "boss-1")) == ["PROOF_INVALID"]
    proof = jwt.encode({"sub": "alice", "act": "BOSS_DEFEAT", "jti": "j-1",
                        "exp": int(time.time()) + 60}, PROOF_SECRET, algorithm="HS256")
    ok = await report(server, "alice", "BOSS_DEFEAT", "boss-2", p=proof)
    assert ok["data"]["reportAction"]["delta"] == 100
    reused = await report(server, "alice", "BOSS_DEFEAT", "boss-3", p=proof)
    assert codes(reused) == ["PROOF_REUSED"]
    bad = await report(server, "alice", "COMPLETE_LEVEL", "m-1", m=[1, 2])
    assert codes(bad) == ["INVALID_REQUEST"] and "metadata" in bad["errors"][0]["message"]
    body = await gql(server, '{ leaderboard(board: "nope") { board } }')
    assert codes(body) == ["NOT_FOUND"]
    # a token that is sent must be valid: the request itself is refused
    async with server.http.post(f"{server.url}{GRAPHQL_PATH}", json={"query": TOP},
                                headers={"Authorization": "Bearer nonsense"}) as r:
        assert r.status == 401
        assert (await r.json())["error"]["code"] == "UNAUTHORIZED"


PAGE = """query($b: String, $n: Int, $p: String, $c: String) {
  leaderboard(board: $b, limit: $n, period: $p, cursor: $c) {
    board period totalUsers nextCursor entries { rank userId score } } }"""


async def test_cursors_page_the_whole_board_as_rest_does(server: Running) -> None:
    users = {f"u{i:02}": 1 + i % 4 for i in range(17)}
    await scores(server, users)
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        lb = (await gql(server, PAGE, n=5, c=cursor))["data"]["leaderboard"]
        status, rest = await server.get("/api/v1/leaderboard?limit=5"
                                        + (f"&cursor={cursor}" if cursor else ""))
        assert status == 200 and lb["nextCursor"] == rest["nextCursor"]
        assert lb["entries"] == [{k: e[k] for k in ("rank", "userId", "score")}
                                 for e in rest["entries"]]
        seen += [e["userId"] for e in lb["entries"]]
        cursor = lb["nextCursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(users) and len(seen) == len(users)
    for bad in ("abc", "!!", cursor or "x"):
        body = await gql(server, PAGE, n=5, c=bad)
        assert codes(body) == ["INVALID_REQUEST"] and body["data"] is None, bad
        assert body["errors"][0]["extensions"]["status"] == 400


async def test_a_closed_period_is_read_with_period(server: Running) -> None:
    period = await closed_cup(server)
    first = (await gql(server, PAGE, b="cup", n=2, p=period))["data"]["leaderboard"]
    assert first["period"] == period and first["totalUsers"] == 4
    assert [e["userId"] for e in first["entries"]] == ["amy", "bob"]
    second = (await gql(server, PAGE, b="cup", n=2, p=period,
                        c=first["nextCursor"]))["data"]["leaderboard"]
    assert [(e["userId"], e["rank"]) for e in second["entries"]] == [("cat", 2), ("dan", 4)]
    assert second["nextCursor"] is None
    now = (await gql(server, PAGE, b="cup"))["data"]["leaderboard"]
    assert now["entries"] == [] and now["period"] not in (None, period)

    body = await gql(server, 'query($p: String) { score(userId: "cat", board: "cup", '
                             'period: $p) { score rank topPercent } }', p=period)
    assert body["data"]["score"] == {"score": 20, "rank": 2, "topPercent": 50.0}
    body = await gql(server, '{ periods(board: "cup") { next periods { id totalUsers '
                             'top { userId score rank } } } }')
    status, rest = await server.get("/api/v1/boards/cup/periods")
    assert status == 200 and body["data"]["periods"]["next"] is None
    [closed] = body["data"]["periods"]["periods"]
    assert closed["id"] == period and closed["totalUsers"] == 4
    assert closed["top"] == [{k: e[k] for k in ("userId", "score", "rank")}
                             for e in rest["periods"][0]["top"]]

    for query in ('{ leaderboard(board: "cup", period: "1999-W01") { board } }',
                  '{ score(userId: "cat", board: "cup", period: "1999-W01") { rank } }',
                  '{ periods(board: "cup", before: "x") { next } }',
                  '{ periods(board: "nope") { next } }'):
        body = await gql(server, query)
        assert codes(body) == ["NOT_FOUND"] and body["data"] is None, query
        assert body["errors"][0]["extensions"]["status"] == 404
    for query in ('{ leaderboard(board: "cup", period: "a b") { board } }',
                  '{ periods(board: "cup", limit: 0) { next } }',
                  '{ score(userId: "cat", board: "cup", period: "a b") { rank } }'):
        body = await gql(server, query)
        assert codes(body) == ["INVALID_REQUEST"] and body["data"] is None, query


async def test_subscription_gets_the_top_then_each_update(server: Running) -> None:
    await server.act("alice", cid="s-1")
    async with server.http.ws_connect(f"{server.url}{GRAPHQL_PATH}",
                                      protocols=("graphql-transport-ws",)) as ws:
        assert ws.protocol == "graphql-transport-ws"
        token = server.token("bob", "Bob")
        await ws.send_json({"type": "connection_init",
                            "payload": {"Authorization": f"Bearer {token}"}})
        assert (await ws.receive_json(timeout=5))["type"] == "connection_ack"
        await ws.send_json({"id": "1", "type": "subscribe", "payload": {
            "query": "subscription { leaderboard(limit: 5) { version top { userId score } } }"}})
        first = await ws.receive_json(timeout=5)
        assert first["type"] == "next", first
        assert first["payload"]["data"]["leaderboard"]["top"] == [
            {"userId": "alice", "score": 10}]
        await report(server, "bob", "WIN_MATCH", "s-2")
        update = await ws.receive_json(timeout=5)
        assert update["type"] == "next", update
        top = update["payload"]["data"]["leaderboard"]["top"]
        assert top == [{"userId": "bob", "score": 20}, {"userId": "alice", "score": 10}]
        await ws.send_json({"id": "1", "type": "complete"})
    await wait_for(lambda: server.service.live.gate.total == 0)  # its place given back


LIVE_CUP = """subscription { leaderboard(board: "cup", limit: 2) {
  period top { userId score }
  periodClosed { board period endsAt top { rank userId displayName score } } } }"""


async def test_subscription_hears_a_period_close_with_the_new_period(
        server: Running) -> None:
    status, made = await call(server, "PUT", "/admin/boards/cup",
                              {"reason": "cup", "reset": "weekly"})
    assert status == 200, made
    period = made["board"]["period"]["id"]
    await scores(server, {"amy": 3, "bob": 2, "cat": 1}, board="cup")
    async with server.http.ws_connect(f"{server.url}{GRAPHQL_PATH}",
                                      protocols=("graphql-transport-ws",)) as ws:
        await ws.send_json({"type": "connection_init", "payload": {}})
        assert (await ws.receive_json(timeout=5))["type"] == "connection_ack"
        await ws.send_json({"id": "1", "type": "subscribe", "payload": {"query": LIVE_CUP}})
        first = (await ws.receive_json(timeout=5))["payload"]["data"]["leaderboard"]
        assert first["period"] == period and first["periodClosed"] is None
        assert [e["userId"] for e in first["top"]] == ["amy", "bob"]

        status, reset = await call(server, "POST", "/admin/boards/cup/reset",
                                   {"reason": "season over"})
        assert status == 200, reset
        msg = await ws.receive_json(timeout=5)
        assert msg["type"] == "next", msg
        update = msg["payload"]["data"]["leaderboard"]
        assert update["period"] == period + ".2" and update["top"] == []
        closed = update["periodClosed"]
        assert (closed["board"], closed["period"]) == ("cup", period)
        assert datetime.fromisoformat(closed["endsAt"]) <= datetime.now(UTC)  # reset now
        assert closed["top"] == [
            {"rank": 1, "userId": "amy", "displayName": "amy", "score": 30},
            {"rank": 2, "userId": "bob", "displayName": "bob", "score": 20}]

        await scores(server, {"dan": 1}, board="cup")  # the next update: no close
        later = (await ws.receive_json(timeout=5))["payload"]["data"]["leaderboard"]
        assert later["periodClosed"] is None and later["period"] == period + ".2"
        assert later["top"] == [{"userId": "dan", "score": 10}]
        await ws.send_json({"id": "1", "type": "complete"})


async def test_subscription_refuses_a_bad_token_at_connection_init(server: Running) -> None:
    async with server.http.ws_connect(f"{server.url}{GRAPHQL_PATH}",
                                      protocols=("graphql-transport-ws",)) as ws:
        await ws.send_json({"type": "connection_init",
                            "payload": {"Authorization": "Bearer forged"}})
        msg = await ws.receive(timeout=5)
        assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 4403


@pytest.mark.parametrize("query", [
    # thousands of aliases of the mutation
    "mutation {" + " ".join(f'a{i}: reportAction(actionType: "COMPLETE_LEVEL", '
                            f'clientActionId: "h{i}") {{ seq }}' for i in range(2000)) + "}",
    # a few aliases too many
    "mutation {" + " ".join(f'a{i}: reportAction(actionType: "COMPLETE_LEVEL", '
                            f'clientActionId: "h{i}") {{ seq }}' for i in range(16)) + "}",
    # nested deeper than the cap (through fragments, which are expanded)
    "fragment E on Entry { rank } fragment L on Leaderboard { entries { ...E } } "
    "mutation { reportAction(actionType: \"COMPLETE_LEVEL\", clientActionId: \"d\") "
    "{ seq } } query { leaderboard { ...L } }",
    # thousands of tokens within the body cap
    "{ boards { " + "name " * 3000 + "} }",
], ids=["2000 aliases", "16 aliases", "too deep", "3000 tokens"])
async def test_hostile_documents_never_reach_the_writer(start_server: ServerFactory,
                                                        query: str) -> None:
    server = await start_server(**{"graphql.max_depth": 2})
    before = server.service.engine.last_seq
    started = time.perf_counter()
    async with server.http.post(f"{server.url}{GRAPHQL_PATH}", json={"query": query},
                                headers=server.headers("mallory")) as r:
        body = await r.json()
    assert r.status in (200, 413), body
    if r.status == 200:
        assert body.get("data") is None and codes(body)
        assert set(codes(body)) == {"INVALID_REQUEST"}
    else:
        assert body["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert time.perf_counter() - started < 5  # a net, not a measure
    assert server.service.engine.last_seq == before
    assert server.service.writer.queue_depth == 0
    assert (await gql(server, "{ boards { name } }"))["data"]["boards"]


async def test_body_and_media_type_are_checked(server: Running) -> None:
    async with server.http.post(f"{server.url}{GRAPHQL_PATH}", data="{}",
                                headers={"Content-Type": "text/plain"}) as r:
        assert r.status == 415 and (await r.json())["error"]["code"] == "UNSUPPORTED_MEDIA_TYPE"
    big = {"query": TOP, "variables": {"pad": "x" * 20000}}
    async with server.http.post(f"{server.url}{GRAPHQL_PATH}", json=big) as r:
        assert r.status == 413
    async with server.http.post(f"{server.url}{GRAPHQL_PATH}", data=b"{nope",
                                headers={"Content-Type": "application/json"}) as r:
        assert r.status == 400 and (await r.json())["error"]["code"] == "INVALID_REQUEST"
    async with server.http.get(f"{server.url}{GRAPHQL_PATH}") as r:
        assert r.status == 400 and (await r.json())["error"]["code"] == "INVALID_REQUEST"


async def test_introspection_is_allowed(server: Running) -> None:
    body = await gql(server, "{ __schema { queryType { fields { name } } } }")
    names = {f["name"] for f in body["data"]["__schema"]["queryType"]["fields"]}
    assert names == {"boards", "leaderboard", "score", "around", "users", "periods"}


async def test_disabled_graphql_answers_404(start_server: ServerFactory) -> None:
    server = await start_server(**{"graphql.enabled": False})
    async with server.http.post(f"{server.url}{GRAPHQL_PATH}", json={"query": TOP}) as r:
        assert r.status == 404
        assert (await r.json())["error"]["code"] == "NOT_FOUND"


async def test_the_endpoint_is_built_once_for_everyone_who_waits(server: Running) -> None:
    # Ready does not wait for the GraphQL endpoint: requests that come before it is
    # built wait for the one build.
    graphql = server.service.graphql
    assert graphql is not None
    fresh = DeferredEndpoint(graphql.parts)
    first, second = await asyncio.gather(fresh.endpoint(), fresh.endpoint())
    assert first is second
    assert await fresh.endpoint() is first
    assert server.service.tasks.states()[GRAPHQL_TASK] == "running"
    body = await gql(server, TOP)
    assert body["data"]["leaderboard"]["entries"] == []


async def test_reads_with_min_seq_wait_for_that_seq_as_rest_does(server: Running) -> None:
    progress = server.service.progress
    assert progress is not None
    progress.patience = 5.0  # wait as a follower does, rather than answer at once
    seq = server.service.engine.last_seq + 1
    query = ('query($s: SafeInt) { leaderboard(minSeq: $s) { totalUsers entries { userId } }'
             ' score(userId: "amy", minSeq: $s) { score }'
             ' around(userId: "amy", minSeq: $s) { entries { userId } }'
             ' users(ids: ["amy"], minSeq: $s) { rank } }')
    read = asyncio.ensure_future(gql(server, query, s=seq))
    await wait_for(lambda: progress.queued == 4)  # every field waits; none has answered
    status, done = await server.act("amy", cid="a1")
    assert status == 200 and done["seq"] == seq, done
    data = (await read)["data"]
    assert data["leaderboard"] == {"totalUsers": 1, "entries": [{"userId": "amy"}]}
    assert data["score"] == {"score": 10} and data["users"] == [{"rank": 1}]
    assert data["around"]["entries"] == [{"userId": "amy"}]

    progress.patience = 0.0  # the writer: a seq it has not committed is not there
    body = await gql(server, "query($s: SafeInt) { leaderboard(minSeq: $s) { version } }",
                     s=seq + 10)
    assert codes(body) == ["NOT_FOUND"] and body["data"] is None, body
    body = await gql(server, "{ leaderboard(minSeq: -1) { version } }")
    assert codes(body) == ["INVALID_REQUEST"], body
    assert "minSeq" in body["errors"][0]["message"]
