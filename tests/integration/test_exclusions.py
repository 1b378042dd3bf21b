"""Excluding a user from a closed period over HTTP (SPEC §11), on SQLite and PostgreSQL:
the period's standings lose them and close up, the event feed carries the correction,
a second exclusion and unknown periods are 404, and a restart keeps it."""

from __future__ import annotations

from typing import Any

from tests.integration.conftest import Running, ServerFactory
from tests.integration.test_boards_api import API, archived, call, closed_cup
from tests.integration.test_events import EVENTS, service


async def standings(server: Running, period: str) -> list[tuple[str, int, int]]:
    status, page = await server.get(f"{API}/leaderboard?board=cup&period={period}")
    assert status == 200, page
    return [(e["userId"], e["score"], e["rank"]) for e in page["entries"]]


async def exclude(server: Running, period: str, user: str, board: str = "cup"
                  ) -> tuple[int, Any]:
    return await call(server, "POST", f"/admin/boards/{board}/periods/{period}/exclusions",
                      {"userId": user, "reason": "cheat"})


async def test_an_exclusion_re_ranks_a_closed_period_and_survives_a_restart(
        start_server: ServerFactory) -> None:
    server = await start_server()
    period = await closed_cup(server)
    assert await standings(server, period) == [
        ("amy", 30, 1), ("bob", 20, 2), ("cat", 20, 2), ("dan", 10, 4)]

    status, done = await exclude(server, period, "amy")
    assert status == 200, done
    assert (done["board"], done["period"], done["userId"]) == ("cup", period, "amy")
    await archived(server)
    after = [("bob", 20, 1), ("cat", 20, 1), ("dan", 10, 3)]
    assert await standings(server, period) == after
    status, page = await server.get(f"{API}/leaderboard?board=cup&period={period}")
    assert page["totalUsers"] == 3
    status, _ = await server.get(f"{API}/users/amy/score?board=cup&period={period}")
    assert status == 404

    status, feed = await server.get(f"{EVENTS}?after=0&limit=100", headers=service(server))
    assert status == 200
    [event] = [e for e in feed["events"] if e["kind"] == "period_exclusion"]
    assert (event["seq"], event["board"], event["userId"], event["period"]) == (
        done["seq"], "cup", "amy", period)
    assert (event["actor"], event["reason"], event["prevScore"]) == ("root", "cheat", 30)
    assert [e["kind"] for e in feed["events"]].count("period_closed") == 1  # still there

    for asked in ((period, "amy"), (period, "ghost"), ("1999-W01", "bob")):
        status, err = await exclude(server, *asked)
        assert status == 404 and err["error"]["code"] == "NOT_FOUND", asked
    status, err = await exclude(server, period, "bob", board="nope")
    assert status == 404 and err["error"]["code"] == "NOT_FOUND"
    status, err = await exclude(server, "a b", "bob")
    assert status == 400 and err["error"]["code"] == "INVALID_REQUEST"
    status, err = await call(server, "POST", f"/admin/boards/cup/periods/{period}/exclusions",
                             {"userId": "bob"})
    assert status == 400 and err["error"]["code"] == "INVALID_REQUEST"
    async with server.http.post(
            f"{server.url}{API}/admin/boards/cup/periods/{period}/exclusions",
            json={"userId": "bob", "reason": "x"}, headers=server.headers("bob")) as r:
        assert r.status == 403
    await server.stop()

    again = await start_server()
    await archived(again)
    assert await standings(again, period) == after
