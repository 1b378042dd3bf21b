"""Prometheus metrics are present and move with what happens."""

from __future__ import annotations

import re

from tests.integration.conftest import Running, ServerFactory


async def scrape(server: Running) -> dict[str, float]:
    async with server.http.get(f"{server.url}/metrics") as r:
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain")
        text = await r.text()
    values = {}
    for line in text.splitlines():
        m = re.match(r"^([a-z_]+(?:\{[^}]*\})?) ([0-9.e+-]+)$", line)
        if m:
            values[m.group(1)] = float(m.group(2))
    return values


async def test_metrics_move_with_actions_auth_and_limits(start_server: ServerFactory) -> None:
    server = await start_server(**{"limits.user_per_minute": 2})
    before = await scrape(server)
    for name in ("scoreboard_commit_seconds_count", "scoreboard_commit_batch_size_count",
                 "scoreboard_writer_queue_depth", "scoreboard_recovery_seconds",
                 'scoreboard_live_connections{transport="ws"}',
                 'scoreboard_live_connections{transport="sse"}'):
        assert name in before, name
    assert (await server.act("alice", cid="m1"))[0] == 200
    assert (await server.act("alice", cid="m1"))[0] == 200  # a replay
    assert (await server.act("alice", cid="m2"))[0] == 429  # over the per-user limit
    assert (await server.act("bob", "NOPE", cid="m3"))[0] == 400
    async with server.http.get(f"{server.url}/api/v1/users/me/score",
                               headers={"Authorization": "Bearer not-a-token"}) as r:
        assert r.status == 401
    after = await scrape(server)
    assert after['scoreboard_actions_total{result="ACCEPTED"}'] == 1
    assert after['scoreboard_actions_total{result="REPLAYED"}'] == 1
    assert after['scoreboard_actions_total{result="UNKNOWN_ACTION"}'] == 1
    assert after["scoreboard_rate_limited_total"] == 1
    assert after['scoreboard_auth_failures_total{reason="malformed"}'] == 1
    assert after["scoreboard_commit_seconds_count"] == before["scoreboard_commit_seconds_count"] + 1
    assert after["scoreboard_commit_batch_size_sum"] >= 1
    assert after['scoreboard_board_users{board="global"}'] == 1
