"""A period closing, live and in the event feed (SPEC §11), against a real service on
127.0.0.1 (SQLite and PostgreSQL): WebSocket and SSE viewers get PERIOD_CLOSED with the
final top, then the new period's empty board; the feed has one `period_closed` with the
final top and totalUsers."""

from __future__ import annotations

from typing import Any

import orjson

from tests.integration.conftest import Running
from tests.integration.test_boards_api import call, scores
from tests.integration.test_events import EVENTS, service
from tests.integration.test_live_sse import EventStream, stream
from tests.integration.test_live_ws import recv, viewer

FINAL = [{"rank": 1, "userId": "amy", "displayName": "amy", "score": 30},
         {"rank": 2, "userId": "bob", "displayName": "bob", "score": 20}]


async def sse_next(events: EventStream, kind: str) -> dict[str, Any]:
    """The data of the next SSE event (retry hints and comments skipped), which must be
    of `kind`."""
    while True:
        block = await events.block()
        if "event" in block:
            assert block["event"] == kind, block
            data: dict[str, Any] = orjson.loads(block["data"])
            return data


async def test_viewers_hear_the_close_then_the_empty_board_and_the_feed_once(
        server: Running) -> None:
    status, made = await call(server, "PUT", "/admin/boards/cup",
                              {"reason": "cup", "reset": "weekly"})
    assert status == 200, made
    await scores(server, {"amy": 3, "bob": 2, "cat": 1}, board="cup")
    status, board = await server.get("/api/v1/leaderboard?board=cup")
    period = board["period"]
    assert status == 200 and period == made["board"]["period"]["id"]

    async with viewer(server, board="cup", limit=2) as (ws, snapshot), \
            stream(server, board="cup", limit=2) as events:
        assert snapshot["period"] == period and len(snapshot["top"]) == 2
        first = await sse_next(events, "leaderboard")
        assert first["period"] == period and first["top"] == snapshot["top"]

        status, reset = await call(server, "POST", "/admin/boards/cup/reset",
                                   {"reason": "season over"})
        assert status == 200, reset
        closed = await recv(ws)
        assert closed["type"] == "PERIOD_CLOSED", closed
        assert set(closed["data"]) == {"board", "period", "endsAt", "top"}
        assert (closed["data"]["board"], closed["data"]["period"]) == ("cup", period)
        assert closed["data"]["top"] == FINAL
        empty = await recv(ws)
        assert empty["type"] == "LEADERBOARD_UPDATE"
        assert empty["data"]["top"] == [] and empty["data"]["period"] == period + ".2"

        assert await sse_next(events, "period_closed") == closed["data"]
        after = await sse_next(events, "leaderboard")
        assert after["top"] == [] and after["period"] == period + ".2"

    status, page = await server.get(f"{EVENTS}?after=0&limit=100", headers=service(server))
    assert status == 200
    feed = [e for e in page["events"] if e["kind"] == "period_closed"]
    assert len(feed) == 1 and feed[0]["seq"] == reset["seq"]
    assert feed[0]["period"]["id"] == period and feed[0]["totalUsers"] == 3
    assert feed[0]["top"] == [{"rank": 1, "userId": "amy", "score": 30},
                              {"rank": 2, "userId": "bob", "score": 20},
                              {"rank": 3, "userId": "cat", "score": 10}]
