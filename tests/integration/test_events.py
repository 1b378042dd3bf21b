"""GET /api/v1/events: every committed record in seq order, as JSON pages or SSE."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson

from tests.integration.conftest import Running, ServerFactory

EVENTS = "/api/v1/events"
BATCH = "/api/v1/scores/actions/batch"


def service(server: Running) -> dict[str, str]:
    return server.headers("consumer", scopes=("scoreboard:service",))


async def report(server: Running, first: int, count: int) -> None:
    actions = [{"userId": f"u{i % 50}", "actionType": "COMPLETE_LEVEL",
                "clientActionId": f"c{i}"} for i in range(first, first + count)]
    async with server.http.post(f"{server.url}{BATCH}", json={"actions": actions},
                                headers=service(server)) as r:
        assert r.status == 200


async def read_stream(response: aiohttp.ClientResponse, count: int) -> list[dict[str, Any]]:
    """Parse SSE events until `count` records have arrived."""
    out: list[dict[str, Any]] = []
    event: dict[str, str] = {}
    while len(out) < count:
        line = (await response.content.readline()).decode().rstrip("\n")
        if line:
            name, _, value = line.partition(": ")
            event[name] = value
            continue
        if "data" in event:
            record = orjson.loads(event["data"])
            assert event["id"] == str(record["seq"]) and event["event"] == record["kind"]
            out.append(record)
        event = {}
    return out


async def test_pages_and_a_long_poll(server: Running) -> None:
    await report(server, 0, 30)
    status, page = await server.get(f"{EVENTS}?after=0&limit=20", headers=service(server))
    assert status == 200 and [e["seq"] for e in page["events"]] == list(range(1, 21))
    assert page["next"] == 20
    first = page["events"][0]
    assert (first["kind"], first["userId"], first["actionType"], first["clientActionId"],
            first["delta"], first["prevScore"], first["newScore"]) == (
        "action", "u0", "COMPLETE_LEVEL", "c0", 10, 0, 10)
    status, page = await server.get(f"{EVENTS}?after=20", headers=service(server))
    assert [e["seq"] for e in page["events"]] == list(range(21, 31)) and page["next"] == 30
    status, page = await server.get(f"{EVENTS}?after=30&wait=1", headers=service(server))
    assert page == {"events": [], "next": 30}  # nothing new within the wait
    poll = asyncio.create_task(server.get(f"{EVENTS}?after=30&wait=10",
                                          headers=service(server)))
    await report(server, 30, 1)
    status, page = await asyncio.wait_for(poll, 5)
    assert status == 200 and [e["seq"] for e in page["events"]] == [31]
    status, page = await server.get(f"{EVENTS}?after=31&wait=0", headers=service(server))
    assert page == {"events": [], "next": 31}


async def test_only_service_tokens_and_well_formed_queries(server: Running) -> None:
    status, body = await server.get(EVENTS, headers=server.headers("amy"))
    assert (status, body["error"]["code"]) == (403, "FORBIDDEN")
    status, body = await server.get(EVENTS)
    assert (status, body["error"]["code"]) == (401, "UNAUTHORIZED")
    for query in ("after=-1", "after=x", "limit=0", "limit=100000", "wait=3600"):
        status, body = await server.get(f"{EVENTS}?{query}", headers=service(server))
        assert (status, body["error"]["code"]) == (400, "INVALID_REQUEST"), query


async def test_a_stream_catches_up_from_the_log_and_follows_without_a_gap(
    start_server: ServerFactory,
) -> None:
    # A tiny memory buffer: catching up reads the log while new records keep coming.
    server = await start_server(**{"events.buffer_records": 16})
    await report(server, 0, 600)
    headers = {**service(server), "Accept": "text/event-stream"}
    async with server.http.get(f"{server.url}{EVENTS}?after=0", headers=headers) as r:
        assert r.status == 200 and r.content_type == "text/event-stream"
        writes = asyncio.create_task(_keep_reporting(server, 600, 20, 30))
        records = await asyncio.wait_for(read_stream(r, 1200), 30)
        await writes
    assert [e["seq"] for e in records] == list(range(1, 1201))
    # Resuming: Last-Event-ID wins over ?after.
    async with server.http.get(f"{server.url}{EVENTS}?after=0",
                               headers={**headers, "Last-Event-ID": "1195"}) as r:
        assert [e["seq"] for e in await asyncio.wait_for(read_stream(r, 5), 10)] == [
            1196, 1197, 1198, 1199, 1200]


async def _keep_reporting(server: Running, first: int, batches: int, size: int) -> None:
    for b in range(batches):
        await report(server, first + b * size, size)


async def test_consumers_are_capped(start_server: ServerFactory) -> None:
    server = await start_server(**{"events.max_consumers": 1})
    headers = {**service(server), "Accept": "text/event-stream"}
    async with server.http.get(f"{server.url}{EVENTS}", headers=headers) as r:
        assert r.status == 200
        await r.content.readline()  # the stream is open
        status, body = await server.get(EVENTS, headers=service(server))
        assert (status, body["error"]["code"]) == (503, "OVERLOADED")
