"""SIGTERM with SSE viewers (SPEC §7): the requests in flight are answered and committed
first, and every stream then ends on the last committed top, as the WebSockets do."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from tests.integration.test_outage import ACTIONS, run_py, token

pytestmark = pytest.mark.slow

STREAM = "/api/v1/leaderboard/stream?limit=10"
USERS = [f"viewer-test-{i}" for i in range(6)]
SIGNAL_AFTER = 60


async def read_events(response: aiohttp.ClientResponse, into: list[dict[str, Any]]) -> None:
    """Every `leaderboard` event of the stream, until it ends."""
    while True:
        try:
            block = await response.content.readuntil(b"\n\n")
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError):
            return
        if not block.endswith(b"\n\n"):
            return  # the stream ended
        for line in block.decode().split("\n"):
            if line.startswith("data:"):
                into.append(orjson.loads(line[5:]))


async def post_until_gone(http: aiohttp.ClientSession, base: str, user: str,
                          acked: list[int], enough: asyncio.Event) -> None:
    n = 0
    while True:
        n += 1
        try:
            async with http.post(f"{base}{ACTIONS}", headers={
                "Authorization": f"Bearer {token(user)}"},
                json={"actionType": "COMPLETE_LEVEL", "clientActionId": f"{user}-{n}"},
            ) as r:
                if r.status == 200:
                    acked.append((await r.json())["seq"])
                    if len(acked) >= SIGNAL_AFTER:
                        enough.set()
        except aiohttp.ClientConnectorError:
            return  # the listener is closed
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
            continue


def top(entries: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return [(e["userId"], e["score"]) for e in entries]


async def test_sigterm_ends_sse_streams_on_the_last_committed_top(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    database_url = f"sqlite:///{tmp_path / 'db' / 'scoreboard.db'}"
    events: list[dict[str, Any]] = []
    acked: list[int] = []
    enough = asyncio.Event()
    async with run_py(data_dir, database_url) as child:
        await child.wait_for_line("Scoreboard serving")
        no_timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        async with aiohttp.ClientSession(timeout=no_timeout) as http:
            async with http.get(f"{child.url}{STREAM}") as stream:
                assert stream.status == 200
                reader = asyncio.create_task(read_events(stream, events))
                posters = [asyncio.create_task(post_until_gone(http, child.url, u, acked,
                                                               enough)) for u in USERS]
                try:
                    await asyncio.wait_for(enough.wait(), 30)
                    child.proc.send_signal(signal.SIGTERM)  # requests are in flight now
                    assert await child.exit_code() == 0, child.stderr
                    await asyncio.wait_for(reader, 10)
                    await asyncio.wait_for(asyncio.gather(*posters), 10)
                finally:
                    for task in (reader, *posters):
                        task.cancel()
    assert events, "no event arrived"
    async with run_py(data_dir, database_url) as child, aiohttp.ClientSession() as http:
        await child.wait_for_line("Scoreboard serving")
        async with http.get(f"{child.url}/api/v1/leaderboard?limit=10") as r:
            final = await r.json()
    assert max(acked) <= sum(score for _, score in top(final["entries"])) // 10
    assert top(events[-1]["top"]) == top(final["entries"]), (events[-1], final)
