"""A writer, a standby and a follower on one PostgreSQL database (SPEC §8).

    python -m bench.cluster [--users 100000] [--records 1000000] [--actions 3000]

Prints (b) the writer's CPU per action arriving over HTTP against per action forwarded
by the follower, measured in the same run from /proc, and (c) the time from SIGKILL of
the writer until the standby answers /ready as the writer, with the log built first.
All processes share this machine's cores, so the figures are per process: on more cores
followers add their own CPU for reads, live viewers and token checks.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import jwt

from bench.common import Report
from bench.http_load import SECRET, free_port, fresh_pg_database
from bench.restart import build

ROOT = Path(__file__).resolve().parents[1]
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def start(role: str, url: str, data: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {**os.environ, "SCOREBOARD_JWT_SECRET": SECRET, "SCOREBOARD_CLUSTER__ENABLED": "true",
           "SCOREBOARD_LIMITS__USER_PER_MINUTE": "0", "SCOREBOARD_LIMITS__IP_PER_MINUTE": "0"}
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "run.py"), "--role", role, "--http-port", str(port),
         "--ws-port", str(free_port()), "--data-dir", str(data / role), "--database-url", url,
         "--log-level", "WARNING"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    return proc, port


async def ready(http: aiohttp.ClientSession, port: int, role: str | None = None,
                within: float = 120.0) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < within:
        try:
            async with http.get(f"http://127.0.0.1:{port}/ready") as r:
                body = await r.json()
                if r.status == 200 and (role is None or body["cluster"]["role"] == role):
                    return time.perf_counter() - started
        except (aiohttp.ClientError, KeyError):
            pass
        await asyncio.sleep(0.01)  # polling another process
    raise RuntimeError(f"port {port} not ready as {role} within {within} s")


async def load(http: aiohttp.ClientSession, port: int, actions: int, tag: str) -> None:
    tokens = [jwt.encode({"sub": f"b{i}", "exp": int(time.time()) + 3600}, SECRET)
              for i in range(64)]
    queue = iter(range(actions))

    async def worker(w: int) -> None:
        headers = {"Authorization": f"Bearer {tokens[w]}"}
        for n in queue:
            async with http.post(f"http://127.0.0.1:{port}/api/v1/scores/actions",
                                 json={"actionType": "COMPLETE_LEVEL",
                                       "clientActionId": f"{tag}-{n}"},
                                 headers=headers) as r:
                if r.status != 200:
                    raise RuntimeError(f"{r.status}: {await r.text()}")

    await asyncio.gather(*(worker(w) for w in range(64)))


async def run(args: argparse.Namespace, report: Report) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        url = await fresh_pg_database("scoreboard_bench_cluster")
        await build(url, data, args.users, args.records)
        writer, wport = start("writer", url, data)
        procs = [writer]
        try:
            async with aiohttp.ClientSession() as http:
                await ready(http, wport)
                standby, sport = start("standby", url, data)
                follower, fport = start("follower", url, data)
                procs += [standby, follower]
                await ready(http, sport)
                await ready(http, fport)
                await load(http, wport, 300, "warm")
                before = cpu_seconds(writer.pid)
                await load(http, wport, args.actions, "direct")
                direct = (cpu_seconds(writer.pid) - before) / args.actions
                before = cpu_seconds(writer.pid)
                await load(http, fport, args.actions, "forwarded")
                forwarded = (cpu_seconds(writer.pid) - before) / args.actions
                report.add("writer CPU per direct HTTP action", direct * 1e6, "µs")
                report.add("writer CPU per action forwarded by a follower", forwarded * 1e6,
                           "µs", "<= 1/3 direct", direct * 1e6, "direct")
                writer.send_signal(signal.SIGKILL)
                killed = time.perf_counter()
                writer.wait()
                await ready(http, sport, "writer", within=30)
                took = time.perf_counter() - killed
                label = f"{args.users // 1000}k users / {args.records // 1000}k records"
                report.add(f"standby takeover after SIGKILL, {label}", took, "s", "<= 5 s")
        finally:
            for p in procs:
                if p.poll() is None:
                    p.terminate()
                p.wait(60)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--users", type=int, default=100_000)
    p.add_argument("--records", type=int, default=1_000_000)
    p.add_argument("--actions", type=int, default=3000)
    args = p.parse_args()
    report = Report("cluster")
    asyncio.run(run(args, report))
    print(f"saved {report.save()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
