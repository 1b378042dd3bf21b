"""`run.py --demo`: simulated players move a real service's board until cancelled."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

from scoreboard.core.records import LogRecord
from scoreboard.demo import run_demo
from tests.integration.conftest import Running


async def test_demo_players_score_through_the_writer(server: Running) -> None:
    service = server.service
    ranking = service.engine.boards["global"]
    enough = asyncio.Event()

    def committed(records: Sequence[LogRecord]) -> None:
        if len(ranking) >= 5:
            enough.set()

    service.writer.listeners.append(committed)
    demo = asyncio.create_task(run_demo(service.writer, service.settings.rules, rate=200.0, seed=3))
    try:
        await asyncio.wait_for(enough.wait(), 10)
    finally:
        demo.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await demo
    status, board = await server.get("/api/v1/leaderboard")
    assert status == 200 and len(board["entries"]) >= 5
    assert all(e["userId"].startswith("demo-") for e in board["entries"])
    # every point is in the log like any other action
    records = [r for chunk in [c async for c in service.store.scan()] for r in chunk]
    assert {r.user_id for r in records} >= {e["userId"] for e in board["entries"]}
