"""Boards over HTTP on SQLite and PostgreSQL (SPEC §11): the board list, cursor paging
while scores change, competition ranks, topPercent, the friends view, and the
administrator's run-time boards, resets and removals."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from tests.integration.conftest import Running, ServerFactory, wait_for
from tests.integration.test_batch import item, post

API = "/api/v1"


def admin(server: Running) -> dict[str, str]:
    return {**server.headers("root", scopes=(server.settings.auth.admin_scope,)),
            "Content-Type": "application/json"}


async def call(server: Running, method: str, path: str, body: Any) -> tuple[int, Any]:
    async with server.http.request(method, f"{server.url}{API}{path}", data=orjson.dumps(body),
                                   headers=admin(server)) as r:
        return r.status, await r.json()


async def scores(server: Running, users: dict[str, int], board: str = "global",
                 tag: str = "") -> None:
    """Each user reaches n times 10 points (COMPLETE_LEVEL), one batch for all."""
    actions = [item(u, f"{tag}{u}-{k}", board=board) for u, n in users.items()
               for k in range(n)]
    status, body = await post(server, {"actions": actions})
    assert status == 200 and all("error" not in r for r in body["results"]), body


async def test_cursor_pages_the_whole_board_without_repeats_or_gaps(server: Running) -> None:
    users = {f"u{i:02d}": 1 + i % 7 for i in range(60)}  # many ties
    await scores(server, users)
    movers = [f"u{i:02d}" for i in range(0, 60, 5)]  # they score while we page
    seen: list[str] = []
    status, page = await server.get(f"{API}/leaderboard?limit=7")
    assert status == 200 and page["period"] is None and page["nextCursor"]
    round_ = 0
    while True:
        seen += [e["userId"] for e in page["entries"]]
        assert [e["rank"] for e in page["entries"]] == sorted(e["rank"] for e in page["entries"])
        if page["nextCursor"] is None:
            break
        round_ += 1
        await scores(server, {u: round_ % 3 + 1 for u in movers}, tag=f"r{round_}-")
        status, page = await server.get(f"{API}/leaderboard?limit=7&cursor={page['nextCursor']}")
        assert status == 200, page
    unchanged = set(users) - set(movers)
    assert sorted(u for u in seen if u in unchanged) == sorted(unchanged)  # each once
    assert round_ >= 5  # several pages, a change before each

    status, first = await server.get(f"{API}/leaderboard?limit=2")
    cursor = first["nextCursor"]
    for bad in ("x" * 600, "bm90LWpzb24", "W10", cursor[:-3]):
        status, err = await server.get(f"{API}/leaderboard?limit=2&cursor={bad}")
        assert status == 400 and err["error"]["code"] == "INVALID_REQUEST", bad
    status, _ = await call(server, "PUT", "/admin/boards/other", {"reason": "test"})
    assert status == 200
    await scores(server, {"a": 1, "b": 1, "c": 1}, board="other")
    status, err = await server.get(f"{API}/leaderboard?board=other&cursor={cursor}")
    assert status == 400 and "another board" in err["error"]["message"]


async def test_boards_listed_and_an_admin_board_created_reset_and_pruned(
        server: Running) -> None:
    status, listed = await server.get(f"{API}/boards")
    assert status == 200
    assert listed["boards"][0] == {
        "id": "global", "title": "global", "sort": "desc", "operator": "sum",
        "ranks": "ordinal", "follows": [], "reset": "never", "timezone": "UTC",
        "period": None, "closed": False}

    body = {"reason": "cup", "title": "The cup", "ranks": "competition", "reset": "weekly",
            "timezone": "Europe/Paris"}
    status, made = await call(server, "PUT", "/admin/boards/cup", body)
    assert status == 200, made
    cup = made["board"]
    assert cup["title"] == "The cup" and cup["ranks"] == "competition" and not cup["closed"]
    assert cup["period"]["id"].count("-W") == 1 and made["seq"] >= 1

    status, err = await call(server, "PUT", "/admin/boards/cup", {**body, "sort": "asc"})
    assert status == 409 and err["error"]["code"] == "BOARD_CONFLICT"
    status, err = await call(server, "PUT", "/admin/boards/bad", {"reason": "x",
                                                                  "timezone": "Mars/Base"})
    assert status == 400 and "boards.bad.timezone" in err["error"]["message"]
    status, err = await call(server, "PUT", "/admin/boards/bad", {"reason": "x",
                                                                  "follows": ["nowhere"]})
    assert status == 400 and "boards.bad.follows" in err["error"]["message"]
    status, renamed = await call(server, "PUT", "/admin/boards/cup",
                                 {"reason": "rename", "title": "Cup"})
    assert status == 200 and renamed["board"]["title"] == "Cup"
    assert renamed["board"]["ranks"] == "competition"  # what was not given stays

    await scores(server, {"amy": 3, "bob": 2, "cat": 2, "dan": 1}, board="cup")
    status, page = await server.get(f"{API}/leaderboard?board=cup")
    assert [(e["userId"], e["rank"]) for e in page["entries"]] == [
        ("amy", 1), ("bob", 2), ("cat", 2), ("dan", 4)]
    assert page["period"] == cup["period"]["id"]
    status, mine = await server.get(f"{API}/users/cat/score?board=cup")
    assert status == 200 and mine["rank"] == 2 and mine["topPercent"] == 50.0
    status, dan = await server.get(f"{API}/users/dan/score?board=cup")
    assert dan["topPercent"] == 100.0

    status, removed = await call(server, "DELETE", "/admin/boards/cup/users/bob",
                                 {"reason": "cheat"})
    assert status == 200 and removed["userId"] == "bob" and removed["board"] == "cup"
    status, _ = await server.get(f"{API}/users/bob/score?board=cup")
    assert status == 404
    status, page = await server.get(f"{API}/leaderboard?board=cup")
    assert [(e["userId"], e["rank"]) for e in page["entries"]] == [
        ("amy", 1), ("cat", 2), ("dan", 3)]
    status, err = await call(server, "DELETE", "/admin/boards/cup/users/bob", {"reason": "x"})
    assert status == 404 and err["error"]["code"] == "NOT_FOUND"

    status, reset = await call(server, "POST", "/admin/boards/cup/reset", {"reason": "redo"})
    assert status == 200, reset
    assert reset["board"]["period"]["id"] == cup["period"]["id"] + ".2"
    status, page = await server.get(f"{API}/leaderboard?board=cup")
    assert page["entries"] == [] and page["period"] == cup["period"]["id"] + ".2"

    for method, path in (("POST", "/admin/boards/nope/reset"),
                         ("DELETE", "/admin/boards/nope/users/amy")):
        status, err = await call(server, method, path, {"reason": "x"})
        assert status == 404 and err["error"]["code"] == "NOT_FOUND", path
    status, err = await server.get(f"{API}/leaderboard/users?board=nope&ids=a")
    assert status == 404
    async with server.http.put(f"{server.url}{API}/admin/boards/x", json={"reason": "x"},
                               headers=server.headers("mallory")) as r:
        assert r.status == 403


async def test_a_read_waiting_on_min_seq_sees_the_period_that_seq_opened(
        server: Running) -> None:
    """A read that waits for its `minSeq` (as a follower's does) answers from the board
    as it stands after the wait: when that seq closed the period, the new empty one."""
    status, cup = await call(server, "PUT", "/admin/boards/cup",
                             {"reason": "cup", "reset": "weekly"})
    assert status == 200, cup
    await scores(server, {"amy": 1, "ben": 2}, board="cup")
    progress = server.service.progress
    assert progress is not None
    progress.patience = 5.0  # wait as a follower does, rather than answer 404 at once
    seq = server.service.engine.last_seq + 1  # the reset's
    paths = [f"{API}/leaderboard?board=cup&minSeq={seq}",
             f"{API}/leaderboard/around/amy?board=cup&minSeq={seq}",
             f"{API}/users/amy/score?board=cup&minSeq={seq}"]
    reads = [asyncio.ensure_future(server.get(path)) for path in paths]
    await wait_for(lambda: progress.queued == len(paths))
    status, reset = await call(server, "POST", "/admin/boards/cup/reset", {"reason": "redo"})
    assert status == 200 and reset["seq"] == seq, reset
    (s1, top), (s2, around), (s3, score) = await asyncio.gather(*reads)
    assert s1 == 200 and top["entries"] == [] and top["totalUsers"] == 0, top
    assert top["period"] == cup["board"]["period"]["id"] + ".2"
    assert s2 == 404 and s3 == 404, (around, score)  # amy has no standing in the new period


async def test_a_read_waiting_on_min_seq_finds_the_board_that_seq_defined(
        server: Running) -> None:
    progress = server.service.progress
    assert progress is not None
    progress.patience = 5.0  # as a follower, which may not have applied the board yet
    seq = server.service.engine.last_seq + 1
    read = asyncio.ensure_future(server.get(f"{API}/leaderboard?board=cup&minSeq={seq}"))
    await wait_for(lambda: progress.queued == 1)
    status, made = await call(server, "PUT", "/admin/boards/cup", {"reason": "cup"})
    assert status == 200 and made["seq"] == seq, made
    status, top = await read
    assert status == 200 and top["board"] == "cup" and top["entries"] == [], top
    status, err = await server.get(f"{API}/leaderboard?board=no%20such&minSeq={seq + 5}")
    assert status == 400, err  # a malformed name is refused before any wait


async def test_the_friends_view_ranks_on_the_whole_board_and_keeps_hidden_ids(
        server: Running) -> None:
    await scores(server, {f"p{i}": 1 + i for i in range(10)})
    status, friends = await server.get(f"{API}/leaderboard/users?ids=p1,p8,ghost,p5,p1")
    assert status == 200 and friends["totalUsers"] == 10 and friends["period"] is None
    assert [(e["userId"], e["rank"]) for e in friends["entries"]] == [
        ("p8", 2), ("p5", 5), ("p1", 9)]
    async with server.http.put(f"{server.url}{API}/users/me/privacy", json={"hideName": True},
                               headers=server.headers("p8")) as r:
        assert r.status == 200
    status, public = await server.get(f"{API}/leaderboard/users?ids=p8,p5")
    assert [e["userId"] for e in public["entries"]] == ["p5"]  # a hidden real id: not there
    status, own = await server.get(f"{API}/leaderboard/users?ids=p8,p5",
                                   headers=server.headers("p8"))
    pseudonym = own["entries"][0]["userId"]
    assert pseudonym.startswith("anon-") and own["entries"][0]["rank"] == 2
    status, by_pseudonym = await server.get(f"{API}/leaderboard/users?ids={pseudonym}")
    assert [e["userId"] for e in by_pseudonym["entries"]] == [pseudonym]
    for bad in ("", ",".join(f"u{i}" for i in range(101))):
        status, err = await server.get(f"{API}/leaderboard/users?ids={bad}")
        assert status == 400 and err["error"]["code"] == "INVALID_REQUEST"


async def test_pages_while_a_writer_races_them(server: Running) -> None:
    """Pages read while batches commit concurrently: no unchanged user twice or never."""
    users = {f"w{i:03d}": 1 + i % 5 for i in range(120)}
    await scores(server, users)
    movers = [f"w{i:03d}" for i in range(0, 120, 3)]
    stop = asyncio.Event()

    async def churn() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            await scores(server, {u: 1 for u in movers[n % 4::4]}, tag=f"c{n}-")

    task = asyncio.create_task(churn())
    try:
        seen: list[str] = []
        status, page = await server.get(f"{API}/leaderboard?limit=9")
        while True:
            seen += [e["userId"] for e in page["entries"]]
            if page["nextCursor"] is None:
                break
            status, page = await server.get(
                f"{API}/leaderboard?limit=9&cursor={page['nextCursor']}")
            assert status == 200
    finally:
        stop.set()
        await task
    unchanged = set(users) - set(movers)
    assert sorted(u for u in seen if u in unchanged) == sorted(unchanged)


async def test_a_run_time_board_and_a_removal_survive_a_restart(
        start_server: ServerFactory) -> None:
    server = await start_server()
    status, made = await call(server, "PUT", "/admin/boards/cup",
                              {"reason": "cup", "title": "Cup", "sort": "asc",
                               "reset": "weekly"})
    assert status == 200, made
    await scores(server, {"amy": 3, "bob": 2, "cat": 1}, board="cup")
    status, _ = await call(server, "DELETE", "/admin/boards/cup/users/amy", {"reason": "cheat"})
    assert status == 200
    status, before = await server.get(f"{API}/leaderboard?board=cup")
    assert [(e["userId"], e["score"]) for e in before["entries"]] == [("cat", 10), ("bob", 20)]
    status, listed = await server.get(f"{API}/boards")
    await server.stop()

    again = await start_server()
    status, after = await again.get(f"{API}/leaderboard?board=cup")
    assert status == 200
    assert after["entries"] == before["entries"] and after["period"] == before["period"]
    status, relisted = await again.get(f"{API}/boards")
    assert relisted["boards"] == listed["boards"]
    status, _ = await again.get(f"{API}/users/amy/score?board=cup")
    assert status == 404


async def archived(server: Running) -> None:
    """Until the archiver has written (or corrected) every closed period so far."""
    archiver = server.service.archiver
    assert archiver is not None
    await asyncio.wait_for(archiver.idle(), 10)


async def closed_cup(server: Running) -> str:
    """A competition-ranked board `cup` whose first period closed with amy 30, bob and
    cat 20, dan 10, archived; its id."""
    status, made = await call(server, "PUT", "/admin/boards/cup",
                              {"reason": "cup", "ranks": "competition", "reset": "weekly"})
    assert status == 200, made
    period: str = made["board"]["period"]["id"]
    await scores(server, {"amy": 3, "bob": 2, "cat": 2, "dan": 1}, board="cup")
    status, _ = await call(server, "POST", "/admin/boards/cup/reset", {"reason": "end"})
    assert status == 200
    await archived(server)
    return period


async def test_a_closed_period_is_archived_and_read_by_period(server: Running) -> None:
    period = await closed_cup(server)

    status, listed = await server.get(f"{API}/boards/cup/periods")
    assert status == 200 and listed["next"] is None
    [closed] = listed["periods"]
    assert closed["id"] == period and closed["totalUsers"] == 4
    assert [(e["userId"], e["score"], e["rank"]) for e in closed["top"]] == [
        ("amy", 30, 1), ("bob", 20, 2), ("cat", 20, 2)]

    status, first = await server.get(f"{API}/leaderboard?board=cup&period={period}&limit=2")
    assert status == 200 and first["period"] == period and first["totalUsers"] == 4
    assert [e["userId"] for e in first["entries"]] == ["amy", "bob"]
    status, second = await server.get(
        f"{API}/leaderboard?board=cup&period={period}&limit=2&cursor={first['nextCursor']}")
    assert [(e["userId"], e["rank"]) for e in second["entries"]] == [("cat", 2), ("dan", 4)]
    assert second["nextCursor"] is None
    status, now = await server.get(f"{API}/leaderboard?board=cup")
    assert now["entries"] == [] and now["period"] != period  # the next period is empty

    status, friends = await server.get(
        f"{API}/leaderboard/users?board=cup&period={period}&ids=dan,ghost,bob,dan")
    assert status == 200 and friends["period"] == period and friends["totalUsers"] == 4
    assert [(e["userId"], e["rank"]) for e in friends["entries"]] == [("bob", 2), ("dan", 4)]
    status, cat = await server.get(f"{API}/users/cat/score?board=cup&period={period}")
    assert status == 200 and (cat["score"], cat["rank"], cat["topPercent"]) == (20, 2, 50.0)
    status, _ = await server.get(f"{API}/users/cat/score?board=cup")
    assert status == 404  # not on the current period
    for path in ("/leaderboard?board=cup&period=1999-W01", "/boards/cup/periods?before=x",
                 "/users/cat/score?board=cup&period=1999-W01", "/boards/nope/periods"):
        status, err = await server.get(f"{API}{path}")
        assert status == 404 and err["error"]["code"] == "NOT_FOUND", path
    for path in ("/leaderboard?board=cup&period=a%20b", "/boards/cup/periods?limit=0",
                 f"/leaderboard?board=cup&period={period}&cursor={now['nextCursor'] or 'x'}"):
        status, err = await server.get(f"{API}{path}")
        assert status == 400 and err["error"]["code"] == "INVALID_REQUEST", path
