"""A GraphQL top-10 query beside the REST top-10 GET, in one run on one server.

    python -m bench.graphql [--seconds 3] [--connections 8] [--users 200]

Starts the service as a subprocess (SQLite, rate limits off), scores a few users, then
drives `GET /api/v1/leaderboard?limit=10` and `POST /graphql` with
`{ leaderboard(limit: 10) { … } }` in turn with the same aiohttp client settings, and
prints requests/s and p50/p99 of each. Short-running: a few seconds per figure.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import jwt

from bench.common import percentile
from bench.http_load import SECRET, free_port, run_service

QUERY = ("{ leaderboard(limit: 10) { board totalUsers version generatedAt "
         "entries { rank userId displayName score } } }")


async def drive(call: Callable[[], Awaitable[None]], seconds: float, connections: int
                ) -> tuple[float, list[float]]:
    """Requests/s and latencies of `connections` loops calling `call` for `seconds`."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def loop() -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(connections)))
    return len(latencies) / (time.perf_counter() - started), latencies


async def measure(port: int, seconds: float, connections: int, users: int) -> None:
    base = f"http://127.0.0.1:{port}"
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as http:
        for i in range(users):
            token = jwt.encode({"sub": f"user{i}", "exp": int(time.time()) + 600}, SECRET,
                               algorithm="HS256")
            async with http.post(f"{base}/api/v1/scores/actions",
                                 json={"actionType": "COMPLETE_LEVEL",
                                       "clientActionId": f"seed-{i}"},
                                 headers={"Authorization": f"Bearer {token}"}) as r:
                assert r.status == 200, await r.text()

        async def rest() -> None:
            async with http.get(f"{base}/api/v1/leaderboard?limit=10") as r:
                assert r.status == 200
                await r.read()

        async def graphql() -> None:
            async with http.post(f"{base}/graphql", json={"query": QUERY}) as r:
                body = await r.json()
                assert r.status == 200 and "errors" not in body, body

        for name, call in (("REST GET /api/v1/leaderboard", rest),
                           ("GraphQL leaderboard(limit: 10)", graphql)):
            await drive(call, 0.5, connections)  # warm up
            rate, lat = await drive(call, seconds, connections)
            print(f"{name:34} {rate:8.0f} req/s  p50 {percentile(lat, 50) * 1000:6.2f} ms"
                  f"  p99 {percentile(lat, 99) * 1000:6.2f} ms")


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--connections", type=int, default=8)
    p.add_argument("--users", type=int, default=200)
    args = p.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        proc = run_service(f"sqlite:///{Path(tmp) / 'bench.db'}", Path(tmp) / "data", port)
        try:
            asyncio.run(measure(port, args.seconds, args.connections, args.users))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
