"""A follower rolls a board's period over from the log (SPEC §11 "Periods"): the writer
decides the rollover and appends `period_closed`; the follower applies that record and
shows the new period, empty, without deciding anything itself. PostgreSQL, real
processes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.integration.test_cluster import cluster, get, post, token

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

ADMIN = {"Authorization": f"Bearer {token('root', scope='scoreboard:admin')}"}


async def admin(http: aiohttp.ClientSession, url: str, method: str, body: Any
                ) -> tuple[int, Any]:
    async with http.request(method, url, json=body, headers=ADMIN) as r:
        return r.status, await r.json()


def period_of(boards: Any, board: str) -> str:
    return str(next(b for b in boards["boards"] if b["id"] == board)["period"]["id"])


async def test_a_follower_rolls_a_period_over_from_the_log(tmp_path: Path,
                                                           fresh_pg_dsn: str) -> None:
    async with cluster(tmp_path, fresh_pg_dsn) as start, aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=8)
    ) as http:
        writer = await start("writer")
        follower = await start("follower")
        status, made = await admin(http, f"{writer.url}/api/v1/admin/boards/cup", "PUT",
                                   {"reason": "a cup", "reset": "weekly", "follows": "global"})
        assert status == 200, made
        first = made["board"]["period"]["id"]
        for user in ("amy", "ben"):
            status, scored = await post(http, writer, user, f"{user}-1")
            assert status == 200, scored
        _, top = await get(http, follower,
                           f"/api/v1/leaderboard?board=cup&minSeq={scored['seq']}")
        assert top["period"] == first and len(top["entries"]) == 2, top

        status, reset = await admin(http, f"{writer.url}/api/v1/admin/boards/cup/reset",
                                    "POST", {"reason": "season over"})
        assert status == 200, reset
        status, top = await get(http, follower,
                                f"/api/v1/leaderboard?board=cup&minSeq={reset['seq']}")
        assert status == 200 and top["period"] == f"{first}.2", top
        assert top["entries"] == []
        status, boards = await get(http, follower, "/api/v1/boards")
        assert status == 200 and period_of(boards, "cup") == f"{first}.2", boards
        _, writers = await get(http, writer, "/api/v1/boards")
        assert period_of(writers, "cup") == f"{first}.2"
        _, whole = await get(http, follower, "/api/v1/leaderboard")  # global keeps its scores
        assert len(whole["entries"]) == 2
