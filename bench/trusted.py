"""Trusted backends and other services: batch ingestion, the event feed, JetStream.

    python -m bench.trusted [--duration 8] [--records 1000000] [--nats-seconds 10]
                            [--batch-only]

1. Durable actions/s through `POST /api/v1/scores/actions/batch` on PostgreSQL, 8
   concurrent clients sending 500-action batches, next to the ceiling measured in the
   same run: a raw asyncpg COPY of as many rows of the same shape, 8 connections at
   once, into a copy of the action log's table (`LIKE action_log INCLUDING ALL`: its
   columns, constraints and indexes; the rows alone, without the scores and users
   tables the service also writes). The engine's own
   decide+apply rate for the same batches (no I/O) is printed beside it.
2. Event-feed throughput: one SSE consumer catching up from seq 0 on a log of
   `--records` records (filled through the batch endpoint first).
3. JetStream publish lag at 1,000 actions/s: a `nats-server -js` of its own, the
   service publishing; lag in records (sampled from /ready) and commit → stream
   latency (a subscriber compares each message's arrival with its record's time).

`--batch-only` runs part 1 alone (a short round for comparing two versions).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import orjson

from bench.common import Report, percentile
from bench.http_load import SECRET, free_port, fresh_pg_database, wait_port

ROOT = Path(__file__).resolve().parents[1]
BATCH = "/api/v1/scores/actions/batch"
USERS = 200_000
NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"


def service(database_url: str, data_dir: Path, port: int, **env: str) -> subprocess.Popen[bytes]:
    environ = {**os.environ, "SCOREBOARD_JWT_SECRET": SECRET,
               "SCOREBOARD_LIMITS__USER_PER_MINUTE": "0",
               "SCOREBOARD_LIMITS__IP_PER_MINUTE": "0",
               "SCOREBOARD_WRITER__QUEUE_SIZE": "100000", **env}
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "run.py"), "--http-port", str(port),
         "--ws-port", str(free_port()), "--data-dir", str(data_dir),
         "--database-url", database_url, "--log-level", "WARNING"],
        cwd=ROOT, env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    wait_port(port)
    return proc


def token() -> str:
    return jwt.encode({"sub": "bench-backend", "scope": "scoreboard:service",
                       "exp": int(time.time()) + 7200}, SECRET, algorithm="HS256")


def batch_body(first: int, size: int) -> bytes:
    return orjson.dumps({"actions": [
        {"userId": f"u{(i * 7919) % USERS}", "actionType": "COMPLETE_LEVEL",
         "clientActionId": f"b{i}"} for i in range(first, first + size)
    ]})


def engine_rate(size: int, batches: int) -> float:
    """The ceiling: the engine deciding and applying the same batches, no I/O."""
    from scoreboard.core.commands import SubmitAction
    from scoreboard.core.engine import Engine
    from scoreboard.settings.model import load_settings

    settings = load_settings({}, environ={})
    engine = Engine(settings.rules, abuse=settings.abuse.limits())
    started = time.perf_counter()
    now = time.time()
    for b in range(batches):
        pending = engine.new_pending()
        for i in range(b * size, (b + 1) * size):
            cmd = SubmitAction(f"u{(i * 7919) % USERS}", None, "global", "COMPLETE_LEVEL",
                               f"b{i}")
            engine.decide(cmd, now, pending)
        for r in pending.records:
            engine.apply(r)
    return size * batches / (time.perf_counter() - started)


async def copy_rate(database_url: str, rows: int, connections: int) -> float:
    """The ceiling: `rows` action-log rows like the batches' written by a raw asyncpg
    COPY over `connections` connections at once (rows/s), into a copy of the action
    log's table with its constraints and indexes."""
    import asyncpg

    setup = await asyncpg.connect(database_url)
    try:
        await setup.execute("DROP TABLE IF EXISTS copy_ceiling")
        await setup.execute("CREATE TABLE copy_ceiling (LIKE action_log INCLUDING ALL)")
    finally:
        await setup.close()
    columns = ("seq", "at", "board", "user_id", "kind", "action_type", "client_action_id",
               "delta", "prev_score", "new_score")
    now = time.time()
    share = -(-rows // connections)
    parts = [[(i, now, "global", f"u{(i * 7919) % USERS}", "action", "COMPLETE_LEVEL",
               f"b{i}", 10, 10 * (i // USERS), 10 * (i // USERS) + 10)
              for i in range(c * share, min(rows, (c + 1) * share))]
             for c in range(connections)]
    conns = [await asyncpg.connect(database_url) for _ in range(connections)]
    try:
        started = time.perf_counter()
        await asyncio.gather(*(
            conn.copy_records_to_table("copy_ceiling", records=part, columns=columns)
            for conn, part in zip(conns, parts, strict=True)))
        took = time.perf_counter() - started
    finally:
        for conn in conns:
            await conn.close()
    return rows / took


async def drive_batches(url: str, clients: int, size: int, seconds: float,
                        first: int = 0, total: int | None = None) -> tuple[int, float, list[float]]:
    """`clients` loops posting `size`-action batches; returns (actions, seconds, latencies)."""
    headers = {"Authorization": f"Bearer {token()}", "Content-Type": "application/json"}
    counter = iter(range(first, 10**12, size))
    done = 0
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def client(http: aiohttp.ClientSession) -> None:
        nonlocal done
        while time.perf_counter() < deadline and (total is None or done < total):
            body = batch_body(next(counter), size)
            t0 = time.perf_counter()
            async with http.post(url + BATCH, data=body, headers=headers) as r:
                assert r.status == 200, await r.text()
                await r.read()
            latencies.append(time.perf_counter() - t0)
            done += size

    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients)) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))
    return done, time.perf_counter() - started, latencies


async def consume(url: str, last: int) -> float:
    """One SSE consumer from seq 0 up to `last`; returns records/s."""
    headers = {"Authorization": f"Bearer {token()}", "Accept": "text/event-stream"}
    started = time.perf_counter()
    timeout = aiohttp.ClientTimeout(total=None, sock_read=60)
    async with aiohttp.ClientSession(timeout=timeout) as http, \
            http.get(f"{url}/api/v1/events?after=0", headers=headers) as r:
        assert r.status == 200
        want = b"id: %d\n" % last
        async for line in r.content:
            if line == want:
                break
    return last / (time.perf_counter() - started)


async def ready(url: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/ready") as r:
        return dict(await r.json())


async def nats_lag(database_url: str, data_dir: Path, seconds: float, report: Report) -> None:
    import nats

    nats_port, port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as store:
        server = subprocess.Popen(  # noqa: ASYNC220 (a bench's helper, not the service)
            [NATS_SERVER, "-js", "-a", "127.0.0.1", "-p", str(nats_port), "-sd", store],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_port(nats_port)
        proc = service(database_url, data_dir, port,
                       SCOREBOARD_EVENTS__NATS__URL=f"nats://127.0.0.1:{nats_port}")
        url = f"http://127.0.0.1:{port}"
        nc = await nats.connect(f"nats://127.0.0.1:{nats_port}")
        delays: list[float] = []

        async def arrived(msg: Any) -> None:
            record = orjson.loads(msg.data)
            at = time.mktime(time.strptime(record["at"][:19], "%Y-%m-%dT%H:%M:%S"))
            at += float("0" + record["at"][19:-1]) - time.timezone
            delays.append(time.time() - at)

        try:
            await nc.subscribe("scoreboard.>", cb=arrived)
            lags: list[float] = []
            start = (await ready(url))["lastSeq"]
            headers = {"Authorization": f"Bearer {token()}", "Content-Type": "application/json"}
            async with aiohttp.ClientSession() as http:
                t0 = time.perf_counter()
                for tick in range(int(seconds * 20)):  # 50 actions every 50 ms
                    body = batch_body(10**9 + tick * 50, 50)
                    async with http.post(url + BATCH, data=body, headers=headers) as r:
                        assert r.status == 200
                    if tick % 2:
                        lags.append((await ready(url))["nats"]["lag"])
                    await asyncio.sleep(max(0.0, t0 + (tick + 1) * 0.05 - time.perf_counter()))
            for _ in range(100):  # the tail: until everything is in the stream (bounded)
                if (await ready(url))["nats"]["lag"] == 0:
                    break
                await asyncio.sleep(0.05)
            total = (await ready(url))["lastSeq"] - start
        finally:
            await nc.close()
            proc.terminate()
            proc.wait(30)
            server.terminate()
            server.wait(10)
    ms = [d * 1000 for d in delays[-total:]] if total else []
    report.add("JetStream lag at 1,000 actions/s, p50", percentile(lags, 50), "records",
               "small")
    report.add("JetStream lag at 1,000 actions/s, max", max(lags or [0]), "records", "")
    report.add("commit → in stream (subscriber), p50", percentile(ms, 50), "ms", "")
    report.add("commit → in stream (subscriber), p99", percentile(ms, 99), "ms", "")


async def feed_catch_up(url: str, clients: int, records: int, report: Report) -> None:
    """Fill the log up to `records` through the batch endpoint, then time one consumer."""
    last = (await ready(url))["lastSeq"]
    if last < records:
        await drive_batches(url, clients, 1000, 3600, first=2 * 10**11, total=records - last)
        last = (await ready(url))["lastSeq"]
    rate = await consume(url, last)
    report.add(f"event feed catch-up, one SSE consumer, {last:,} records", rate,
               "records/s", "")


async def main_async(args: argparse.Namespace) -> None:
    report = Report("trusted")
    has_nats = Path(NATS_SERVER).exists()  # noqa: ASYNC240 (once, before anything runs)
    size, clients = 500, 8
    ceiling = engine_rate(size, 200)
    db = await fresh_pg_database("scoreboard_bench_trusted")
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        proc = service(db, Path(tmp) / "data", port)
        url = f"http://127.0.0.1:{port}"
        try:
            await drive_batches(url, clients, size, 1.0, first=10**11)  # warm up
            done, took, latencies = await drive_batches(url, clients, size, args.duration)
            copy = await copy_rate(db, done, clients)  # the service idle meanwhile
            report.add("durable actions/s, batch endpoint, PostgreSQL, 8 x 500", done / took,
                       "actions/s", ">= 30,000; >= 0.15", copy, "raw COPY, 8 conns")
            report.add("engine decide+apply of the same batches, no I/O", ceiling,
                       "actions/s", "")
            report.add("batch round trip p99 (500 actions)", percentile(latencies, 99) * 1000,
                       "ms", "")
            if not args.batch_only:
                await feed_catch_up(url, clients, args.records, report)
        finally:
            proc.terminate()
            proc.wait(60)
        if has_nats and not args.batch_only:
            await nats_lag(await fresh_pg_database("scoreboard_bench_nats"),
                           Path(tmp) / "nats-data", args.nats_seconds, report)
    print(f"saved {report.save()}")


def main() -> int:
    p = argparse.ArgumentParser(description="Batch ingestion, event feed and JetStream "
                                "figures on PostgreSQL.")
    p.add_argument("--duration", type=float, default=8.0,
                   help="seconds of batch load measured (after 1 s of warm-up)")
    p.add_argument("--records", type=int, default=1_000_000,
                   help="log size the event-feed consumer catches up on")
    p.add_argument("--nats-seconds", type=float, default=10.0,
                   help="seconds of 1,000 actions/s for the JetStream part")
    p.add_argument("--batch-only", action="store_true",
                   help="run only the batch part (no event feed, no JetStream)")
    asyncio.run(main_async(p.parse_args()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
