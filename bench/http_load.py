"""Durable score actions over HTTP at 64 connections, next to a bare aiohttp handler.

    python -m bench.http_load [--backend sqlite|postgres|both] [--duration 10]

Needs `wrk` (Debian package). Starts the service as a subprocess (rate limits off) and
a bare aiohttp app, drives both with the same wrk settings, prints actions/s and
p50/p99 latency, the same for the top-10 GET, and checks that every 2xx is in the log.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import jwt

from bench.common import UNBOUNDED_RULES, Report

ROOT = Path(__file__).resolve().parents[1]
SECRET = "bench-secret-0123456789abcdef0123456789"
PG_ADMIN = os.environ.get("SCOREBOARD_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")

LUA_POST = """
local tokens = {%(tokens)s}
local counter = 0
local thread_id = 0
local threads = {}
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end
function init(args)
  thread_id = tid
  prefix = args[1] or ""
end
request = function()
  counter = counter + 1
  local i = (counter * 7919 + thread_id) %% #tokens + 1
  local body = '{"actionType":"COMPLETE_LEVEL","clientActionId":"' .. prefix .. 't' .. thread_id
    .. '-' .. counter .. '"}'
  return wrk.format("POST", "%(path)s", {["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. tokens[i]}, body)
end
"""


def post_scripts(users: int, *paths: str) -> list[str]:
    """A wrk script per path, posting score actions there, each as one of `users` users
    (`user0`…), each user with a token of their own (the same tokens in every script)."""
    exp = int(time.time()) + 3600
    tokens = ",".join(
        '"' + jwt.encode({"sub": f"user{i}", "exp": exp}, SECRET, algorithm="HS256") + '"'
        for i in range(users)
    )
    return [LUA_POST % {"tokens": tokens, "path": path} for path in paths]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def wrk(url: str, duration: int, connections: int, script: str | None = None,
        prefix: str = "") -> dict[str, float]:
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", url]
    script_file = None
    if script:
        script_file = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
        script_file.write(script)
        script_file.close()
        cmd[1:1] = ["-s", script_file.name]
        cmd += ["--", prefix]  # keeps clientActionIds unique across rounds
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    if script_file:
        os.unlink(script_file.name)

    def lat(label: str) -> float:
        m = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            return float("nan")
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {"rps": rps, "p50": lat("50"), "p99": lat("99"), "total": total,
            "non2xx": int(non2xx.group(1)) if non2xx else 0,
            "socket_errors": 1 if errors else 0}


_LIBC = ctypes.CDLL(None)


def cpu_seconds(pid: int) -> float:
    """User + system CPU the process has used, all its threads: its CPU clock, to the
    nanosecond (`clock_getcpuclockid`). /proc counts in 10 ms ticks, which moved a
    round of 2,000 actions in steps of 5 µs per action; it is the fallback."""
    clock = ctypes.c_int()
    if _LIBC.clock_getcpuclockid(pid, ctypes.byref(clock)) == 0:
        return time.clock_gettime(clock.value)
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk_cpu(pid: int, *args: Any, **kw: Any) -> dict[str, float]:
    """`wrk`, plus the server's CPU microseconds per request during the run: a figure
    that moves far less than throughput when other work shares the cores."""
    before = cpu_seconds(pid)
    result = wrk(*args, **kw)
    result["cpu_us"] = (cpu_seconds(pid) - before) / max(1, result["total"]) * 1e6
    return result


def median_cpu(runs: list[dict[str, float]]) -> float:
    return statistics.median(r["cpu_us"] for r in runs)


def median_run(runs: list[dict[str, float]]) -> dict[str, float]:
    """The run with the median rate (its latencies belong to that same run)."""
    return sorted(runs, key=lambda r: r["rps"])[len(runs) // 2]


async def fresh_pg_database(name: str) -> str:
    import asyncpg
    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"


def run_service(database_url: str, data_dir: Path, port: int,
                config: Path = UNBOUNDED_RULES) -> subprocess.Popen[bytes]:
    env = {**os.environ, "SCOREBOARD_JWT_SECRET": SECRET,
           "SCOREBOARD_CONFIG": str(config),
           "SCOREBOARD_LIMITS__USER_PER_MINUTE": "0", "SCOREBOARD_LIMITS__IP_PER_MINUTE": "0",
           "SCOREBOARD_WRITER__QUEUE_SIZE": "100000"}
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "run.py"), "--http-port", str(port),
         "--ws-port", str(free_port()), "--data-dir", str(data_dir),
         "--database-url", database_url, "--log-level", "WARNING"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    wait_port(port)
    return proc


def last_seq(port: int) -> int:
    import json
    import urllib.request
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready") as r:
        return int(json.load(r)["lastSeq"])


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    p.add_argument("--duration", type=int, default=4, help="seconds per wrk round")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds per figure")
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--users", type=int, default=2000)
    args = p.parse_args()
    if not shutil.which("wrk"):
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 1
    report = Report("http_load")
    c, d, rounds = args.connections, args.duration, args.rounds
    post_lua, bare_lua = post_scripts(args.users, "/api/v1/scores/actions", "/bare")

    # The machine's speed drifts (shared cores), so each figure alternates with its
    # ceiling in short rounds, against servers that stay up, and medians are compared.
    bare_port = free_port()
    bare = subprocess.Popen([sys.executable, "-m", "bench.bare_server", "--port", str(bare_port)],
                            cwd=ROOT)
    bare_url = f"http://127.0.0.1:{bare_port}"
    try:
        wait_port(bare_port)
        backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
        for backend in backends:
            with tempfile.TemporaryDirectory() as tmp:
                if backend == "postgres":
                    url = asyncio.run(fresh_pg_database("scoreboard_bench"))
                else:
                    url = f"sqlite:///{tmp}/bench.db"
                port = free_port()
                proc = run_service(url, Path(tmp), port)
                service_url = f"http://127.0.0.1:{port}"
                posts, bare_posts, gets, bare_gets = [], [], [], []
                try:
                    for n in range(rounds):
                        bare_posts.append(wrk_cpu(bare.pid, bare_url, d, c, bare_lua))
                        posts.append(wrk_cpu(proc.pid, service_url, d, c, post_lua,
                                             prefix=f"r{n}"))
                    committed = last_seq(port)
                    for _ in range(rounds):
                        bare_gets.append(wrk_cpu(bare.pid, f"{bare_url}/bare", d, c))
                        gets.append(wrk_cpu(proc.pid, f"{service_url}/api/v1/leaderboard?limit=10",
                                            d, c))
                finally:
                    proc.terminate()
                    proc.wait(30)
            ok = sum(r["total"] - r["non2xx"] for r in posts)
            r = median_run(posts)
            target = ">= 10,000/s" if backend == "postgres" else ""
            report.add(f"durable actions/s, {backend}, {c} conns (median of {rounds})",
                       r["rps"], "actions/s", target, median_run(bare_posts)["rps"],
                       "bare POST")
            report.add(f"  server CPU per action, {backend}", median_cpu(posts), "µs", "",
                       median_cpu(bare_posts), "bare POST µs")
            report.add(f"  p50 latency, {backend}", r["p50"], "ms")
            report.add(f"  p99 latency, {backend}", r["p99"], "ms",
                       "<= 25 ms" if backend == "postgres" else "")
            report.add(f"  non-2xx replies, {backend}", sum(x["non2xx"] for x in posts), "")
            report.add(f"  2xx replies minus log records (must be <= 0), {backend}",
                       ok - committed, "")
            report.add(f"top-10 GET, {backend} (median of {rounds})", median_run(gets)["rps"],
                       "req/s", ">= 85% of bare", median_run(bare_gets)["rps"], "bare GET")
            report.add(f"  server CPU per top-10 GET, {backend}", median_cpu(gets), "µs", "",
                       median_cpu(bare_gets), "bare GET µs")
    finally:
        bare.terminate()
        bare.wait()
    print(f"saved {report.save()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
