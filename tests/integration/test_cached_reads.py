"""The cached top-N reply over real sockets: the same bytes while the board stands, new
bytes (and a new ETag naming them) as soon as it changes, 304 for the current ETag only,
and only ever the public view."""

from __future__ import annotations

import orjson

from tests.integration.conftest import Running
from tests.integration.test_live_sse import stream
from tests.integration.test_privacy import ALICE, hide, hides_alice

TOP = "/api/v1/leaderboard"


async def fetch(r: Running, path: str, headers: dict[str, str] | None = None
                ) -> tuple[int, str, bytes, str]:
    """(status, ETag, body, X-Request-ID)."""
    async with r.http.get(f"{r.url}{path}", headers=headers) as resp:
        return (resp.status, resp.headers.get("ETag", ""), await resp.read(),
                resp.headers.get("X-Request-ID", ""))


def agrees(etag: str, body: bytes, limit: int) -> dict[str, object]:
    """The ETag names the version the body was built from; the parsed body."""
    data: dict[str, object] = orjson.loads(body)
    assert etag == f'"{data["board"]}-{data["version"]}-{limit}"', (etag, data)
    return data


async def test_cached_bytes_follow_the_board(server: Running) -> None:
    await server.act("alice", cid="a1")
    status, etag, body, _ = await fetch(server, f"{TOP}?limit=10")
    assert status == 200
    first = agrees(etag, body, 10)
    # the board has not moved: the very same bytes (generatedAt included) and ETag
    assert (await fetch(server, f"{TOP}?limit=10"))[1:3] == (etag, body)
    # another limit is another reply of the same version
    status, etag5, body5, _ = await fetch(server, f"{TOP}?limit=5")
    assert status == 200 and etag5 != etag
    assert agrees(etag5, body5, 5)["version"] == first["version"]

    for n in range(3):  # every change is seen at once: never a stale version
        await server.act(f"bob{n}", "WIN_MATCH", cid=f"b{n}")
        status, new_etag, new_body, _ = await fetch(server, f"{TOP}?limit=10")
        data = agrees(new_etag, new_body, 10)
        assert status == 200 and new_etag != etag and new_body != body
        assert data["version"] > first["version"]  # type: ignore[operator]
        assert data["totalUsers"] == n + 2
        assert {e["userId"] for e in data["entries"]} >= {f"bob{n}", "alice"}  # type: ignore[attr-defined]
        etag, body = new_etag, new_body


async def test_304_for_the_current_etag_only(server: Running) -> None:
    await server.act("alice", cid="a1")
    _, old, _, _ = await fetch(server, TOP)
    status, etag, body, rid = await fetch(server, TOP, {"If-None-Match": old,
                                                        "X-Request-ID": "cached-304"})
    assert (status, etag, body, rid) == (304, old, b"", "cached-304")
    await server.act("bob", cid="b1")
    status, etag, body, _ = await fetch(server, TOP, {"If-None-Match": old})
    assert status == 200 and etag != old
    agrees(etag, body, 10)
    assert (await fetch(server, TOP, {"If-None-Match": etag}))[0] == 304


async def test_hiding_replaces_the_cached_reply(server: Running) -> None:
    await server.act(ALICE, "WIN_MATCH")
    await server.act("bob")
    _, before, body, _ = await fetch(server, TOP)
    assert not hides_alice(body)
    await hide(server, ALICE)
    # the caller's own token changes nothing: the reply is the public view for everyone
    for headers in (None, server.headers(ALICE)):
        status, etag, body, _ = await fetch(server, TOP, headers)
        assert status == 200 and etag != before and hides_alice(body)
        agrees(etag, body, 10)


async def test_sse_snapshots_follow_the_board(server: Running) -> None:
    """A stream that joins gets the top as it is now, whatever the open streams of its
    group were last sent, and the same top the GET answers."""
    await server.act("alice")
    async with stream(server, limit=3) as held:
        await held.block()
        await held.event()
        for n in range(3):
            await server.act(f"bob{n}", "WIN_MATCH")  # each one moves the top 3
            _, board = await server.get(f"{TOP}?limit=3")
            async with stream(server, limit=3) as events:
                await events.block()
                snapshot = await events.event()
            assert snapshot["version"] == board["version"]
            assert snapshot["top"] == board["entries"]


async def test_a_query_asked_again_answers_as_the_first_time(server: Running) -> None:
    """The top's query strings are parsed once and then known: each still answers as
    it did, per board, and one that only looks the same once decoded is still refused."""
    await server.act("alice", cid="a1")
    for _ in range(2):
        for path in (f"{TOP}?board=global&limit=5", f"{TOP}?limit=5&board=global"):
            status, etag, body, _ = await fetch(server, path)
            assert status == 200
            agrees(etag, body, 5)
        status, _, body, _ = await fetch(server, f"{TOP}?board=global%26limit%3D5")
        assert status == 400, body
        status, _, body, _ = await fetch(server, f"{TOP}?board=nosuch&limit=5")
        assert status == 404, body
        assert (await fetch(server, f"{TOP}?limit=0"))[0] == 400
    await server.act("bob", cid="b1")  # a known query string follows the board
    status, etag, body, _ = await fetch(server, f"{TOP}?board=global&limit=5")
    assert status == 200 and agrees(etag, body, 5)["totalUsers"] == 2


async def test_more_query_strings_than_are_remembered(server: Running) -> None:
    """Past the bound the remembered strings are dropped, and each still answers as asked."""
    await server.act("alice", cid="a1")
    for _ in range(2):
        for n in range(1, 101):
            for query in (f"limit={n}", f"limit={n}&board=global", f"board=global&limit={n}"):
                status, etag, body, _ = await fetch(server, f"{TOP}?{query}")
                assert status == 200
                agrees(etag, body, n)
