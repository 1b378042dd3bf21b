"""A writer, a standby and followers on one PostgreSQL database (SPEC §8).

    python -m bench.cluster [--only a,b,c,d] [--users 1000000] [--records 10000000]
                            [--actions 10000] [--viewers 600] [--followers 2]
                            [--rate 1000] [--duration 10]

Phases, each in its own database:

a. viewers spread over 1 writer + `--followers` followers (a fresh database): `--viewers`
   WebSocket viewers on each process while `--rate` actions/s are posted to the writer
   for `--duration` s. Commit time is when the writer's HTTP reply acknowledged a seq;
   receive time is when a viewer got the first LEADERBOARD_UPDATE whose version is at
   least that seq (the board version is the last seq applied, checked at the end).
   Prints commit→receive p50/p99, viewers held, RSS and CPU per process.
b. the writer's CPU per action arriving over HTTP against per action forwarded by a
   follower, measured in the same run from /proc in alternating rounds (log of
   `--users`/`--records` first).
c. after SIGKILL of the writer (same log as b): the time until the standby answers a
   score action, necessarily as the new writer, and until its /ready says writer.
d. (same log as b) each process's RSS once it has recovered `--users` users from the
   log: the writer by recovery, the standby and the follower by the same rebuild before
   they tail it; and how long each took to be ready.

All processes share this machine's cores, so the figures are per process: on more cores
followers add their own CPU for reads, live viewers and token checks.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import jwt

from bench.common import UNBOUNDED_RULES, Report, paced, percentile, rss_mb
from bench.http_load import SECRET, cpu_seconds, free_port, fresh_pg_database
from bench.live_fanout import ViewerProcess, receive_latencies
from bench.restart import build

ROOT = Path(__file__).resolve().parents[1]
PLAYERS = [f"player{i:02d}" for i in range(12)]  # every action moves the top 10


class Node:
    """One service process: its role and ports."""

    def __init__(self, role: str, url: str, data: Path) -> None:
        self.role = role
        self.spawned = time.perf_counter()
        self.port = free_port()
        self.ws_port = free_port()
        env = {**os.environ, "SCOREBOARD_JWT_SECRET": SECRET,
               "SCOREBOARD_CLUSTER__ENABLED": "true",
               "SCOREBOARD_CONFIG": str(UNBOUNDED_RULES),
               "SCOREBOARD_LIMITS__USER_PER_MINUTE": "0",
               "SCOREBOARD_LIMITS__IP_PER_MINUTE": "0",
               "SCOREBOARD_ABUSE__ACTIONS_PER_MINUTE": "0",
               "SCOREBOARD_ABUSE__POINTS_PER_MINUTE": "0",
               "SCOREBOARD_EDGE__MAX_CONNECTIONS_PER_IP": "0",
               "SCOREBOARD_LIVE__MAX_CONNECTIONS_PER_IP": "0"}
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "run.py"), "--role", role, "--http-port",
             str(self.port), "--ws-port", str(self.ws_port), "--data-dir",
             str(data / f"{role}-{self.port}"), "--database-url", url,
             "--log-level", "WARNING"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(60)


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


async def up(http: aiohttp.ClientSession, node: Node) -> float:
    """Seconds from spawning `node` until its /ready answers 200."""
    await ready(http, node.port)
    return time.perf_counter() - node.spawned


def token(user: str) -> str:
    return jwt.encode({"sub": user, "exp": int(time.time()) + 3600}, SECRET)


async def post_action(http: aiohttp.ClientSession, port: int, bearer: str,
                      action_id: str) -> int:
    """One score action; its seq."""
    async with http.post(f"http://127.0.0.1:{port}/api/v1/scores/actions",
                         json={"actionType": "COMPLETE_LEVEL", "clientActionId": action_id},
                         headers={"Authorization": f"Bearer {bearer}"}) as r:
        if r.status != 200:
            raise RuntimeError(f"{r.status}: {await r.text()}")
        seq: int = (await r.json())["seq"]
        return seq


async def load(http: aiohttp.ClientSession, port: int, actions: int, tag: str) -> None:
    tokens = [token(f"b{i}") for i in range(64)]
    queue = iter(range(actions))

    async def worker(w: int) -> None:
        for n in queue:
            await post_action(http, port, tokens[w], f"{tag}-{n}")

    await asyncio.gather(*(worker(w) for w in range(64)))


async def paced_actions(http: aiohttp.ClientSession, port: int, rate: float, seconds: float,
                        tag: str) -> list[tuple[int, float]]:
    """About `rate` actions/s for `seconds` from 96 submitters; (seq, time acknowledged)."""
    tokens = [token(p) for p in PLAYERS]
    acks: list[tuple[int, float]] = []

    async def submit(k: int, n: int) -> None:
        seq = await post_action(http, port, tokens[(k * 7 + n) % len(tokens)],
                                f"{tag}-{k}-{n}")
        acks.append((seq, time.monotonic()))  # the viewers note time.monotonic() too

    await paced(submit, rate, seconds, submitters=96)  # enough in flight for 1,000/s
    return acks


async def board_version(http: aiohttp.ClientSession, port: int) -> tuple[int, int]:
    """(board version from the leaderboard's ETag, lastSeq from /ready)."""
    async with http.get(f"http://127.0.0.1:{port}/api/v1/leaderboard?limit=10") as r:
        etag = r.headers["ETag"].strip('"')
    async with http.get(f"http://127.0.0.1:{port}/ready") as r:
        last_seq = (await r.json())["lastSeq"]
    return int(etag.split("-")[-2]), last_seq


async def phase_fanout(args: argparse.Namespace, report: Report, data: Path) -> None:
    url = await fresh_pg_database("scoreboard_bench_cluster_fanout")
    nodes = [Node("writer", url, data)]
    viewers: list[ViewerProcess] = []
    try:
        async with aiohttp.ClientSession() as http:
            await ready(http, nodes[0].port)
            nodes += [Node("follower", url, data) for _ in range(args.followers)]
            for n in nodes[1:]:
                await ready(http, n.port)
            started = time.monotonic()
            for n in nodes:
                viewers.append(await ViewerProcess.start("ws", n.ws_port, args.viewers))
            await asyncio.gather(*(v.ready() for v in viewers))
            print(f"(a) {sum(v.connected for v in viewers):,} viewers connected in "
                  f"{time.monotonic() - started:.1f} s", flush=True)
            writer = nodes[0]
            await paced_actions(http, writer.port, args.rate, 2.0, "warm")
            cpu = [cpu_seconds(n.proc.pid) for n in nodes]
            since = time.monotonic()
            acks = await paced_actions(http, writer.port, args.rate, args.duration, "run")
            took = time.monotonic() - since
            cpu = [cpu_seconds(n.proc.pid) - c for n, c in zip(nodes, cpu, strict=True)]
            last = max(seq for seq, _ in acks)
            seen = [int((await v.ask(f"WAIT {last}")).split()[1]) for v in viewers]
            print(f"(a) {len(acks):,} actions acknowledged in {took:.1f} s "
                  f"({len(acks) / took:,.0f}/s); viewers with the last seq {last}: "
                  f"{', '.join(map(str, seen))}", flush=True)
            for n in nodes:
                version, last_seq = await board_version(http, n.port)
                same = "equals" if version == last_seq == last else "DIFFERS FROM"
                print(f"(a) {n.role} :{n.port}: board version {version} {same} last seq "
                      f"applied {last_seq} (last acknowledged {last})", flush=True)
            for i, (n, v) in enumerate(zip(nodes, viewers, strict=True)):
                records = json.loads(await v.ask("REPORT"))["records"]
                lat = receive_latencies(acks, records)
                name = f"{n.role} {i}" if n.role == "follower" else n.role
                report.add(f"(a) {name}: commit→receive p50", percentile(lat, 50) * 1000,
                           "ms", "")
                report.add(f"(a) {name}: commit→receive p99", percentile(lat, 99) * 1000,
                           "ms", "<= 100")
                report.add(f"(a) {name}: viewers held", v.connected, "viewers", "")
                report.add(f"(a) {name}: RSS with them", rss_mb(n.proc.pid), "MB", "")
                report.add(f"(a) {name}: CPU during the run", cpu[i] / took * 100,
                           "% of a core", "")
            print("(a) on more cores: each follower holds its own viewers with its own "
                  "core, so viewers add up linearly with followers (N followers x the "
                  "viewers one process holds); the writer's cost per follower is one "
                  "tail (a LISTEN connection and each record read once per follower), "
                  "not per viewer. Here every process, the viewer clients and PostgreSQL "
                  "share 2 cores.", flush=True)
    finally:
        for v in viewers:
            await v.quit()
        for n in nodes:
            n.stop()


async def takeover(http: aiohttp.ClientSession, standby: Node, writer: Node,
                   report: Report, label: str) -> None:
    """SIGKILL the writer, then time until the standby commits a score action (the old
    writer is gone, so whoever acknowledges it is the new writer) and /ready says so."""
    bearer = token("takeover")
    answered = asyncio.get_running_loop().create_future()

    async def attempt(n: int) -> None:
        try:
            async with asyncio.timeout(30):
                seq = await post_action(http, standby.port, bearer, f"takeover-{n}")
        except (aiohttp.ClientError, RuntimeError, TimeoutError):
            return
        if not answered.done():
            answered.set_result((time.perf_counter(), seq))

    writer.proc.send_signal(signal.SIGKILL)
    killed = time.perf_counter()
    writer.proc.wait()
    tasks = []
    n = 0
    while not answered.done() and time.perf_counter() - killed < 30:
        tasks.append(asyncio.create_task(attempt(n)))
        n += 1
        await asyncio.sleep(0.02)  # a new attempt every 20 ms, each waiting for its reply
    if not answered.done():
        raise RuntimeError("the standby answered no score action within 30 s")
    at, seq = answered.result()
    as_writer = await ready(http, standby.port, "writer", within=30)
    role_after = time.perf_counter() - killed
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    print(f"(c) {n} attempts posted to the standby; first answered with seq {seq}; "
          f"/ready said writer {as_writer:.2f} s after that answer", flush=True)
    report.add(f"(c) SIGKILL → standby answers a score action, {label}", at - killed, "s",
               "<= 5 s")
    report.add(f"(c) SIGKILL → standby /ready as writer, {label}", role_after, "s",
               "<= 5 s")


async def writer_cost(http: aiohttp.ClientSession, writer: Node, follower: Node,
                      actions: int, report: Report, rounds: int = 5) -> None:
    """The writer's CPU per action posted to it against per action posted to a follower,
    alternating in `rounds` short rounds (the shared cores drift between runs) and
    compared by the medians."""
    await load(http, writer.port, 300, "warm")
    await load(http, follower.port, 300, "warm-forwarded")
    per = max(1, actions // rounds)
    costs: dict[str, list[float]] = {"direct": [], "forwarded": []}
    for r in range(rounds):
        for kind, port in (("direct", writer.port), ("forwarded", follower.port)):
            before = cpu_seconds(writer.proc.pid)
            await load(http, port, per, f"{kind}-{r}")
            costs[kind].append((cpu_seconds(writer.proc.pid) - before) / per * 1e6)
    for kind, values in costs.items():
        print(f"(b) {kind}: " + ", ".join(f"{v:.0f}" for v in values) + " µs", flush=True)
    direct, forwarded = statistics.median(costs["direct"]), statistics.median(costs["forwarded"])
    report.add(f"(b) writer CPU per direct HTTP action (median of {rounds})", direct, "µs")
    report.add(f"(b) writer CPU per action forwarded by a follower (median of {rounds})",
               forwarded, "µs", "<= 1/3 direct", direct, "direct")


async def phase_writer_cost(args: argparse.Namespace, report: Report, data: Path) -> None:
    url = await fresh_pg_database("scoreboard_bench_cluster")
    built = await build(url, data, args.users, args.records)
    label = f"{args.users // 1000}k users / {args.records // 1000}k records"
    print(f"built {label} in {built:.0f} s", flush=True)
    writer = Node("writer", url, data)
    nodes = [writer]
    try:
        async with aiohttp.ClientSession() as http:
            took = [await up(http, writer)]
            standby = Node("standby", url, data)
            follower = Node("follower", url, data)
            nodes += [standby, follower]
            took += [await up(http, standby), await up(http, follower)]
            if "d" in args.only:
                for n, t in zip(nodes, took, strict=True):
                    report.add(f"(d) {n.role}: RSS after recovering {label}",
                               rss_mb(n.proc.pid), "MB", "<= 300 MB")
                    report.add(f"(d) {n.role}: spawn to ready", t, "s",
                               "" if n is writer else "(with the other one starting)")
            if "b" in args.only:
                await writer_cost(http, writer, follower, args.actions, report)
            if "c" in args.only:
                await takeover(http, standby, writer, report, label)
    finally:
        for n in nodes:
            n.stop()


async def run(args: argparse.Namespace, report: Report) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        if "a" in args.only:
            await phase_fanout(args, report, Path(tmp))
        if args.only & {"b", "c", "d"}:
            await phase_writer_cost(args, report, Path(tmp))


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--only", default="a,b,c,d", help="comma-separated phases: a, b, c, d")
    p.add_argument("--users", type=int, default=1_000_000)
    p.add_argument("--records", type=int, default=10_000_000)
    p.add_argument("--actions", type=int, default=10_000, help="per kind, phase b")
    p.add_argument("--viewers", type=int, default=600, help="per process, phase a")
    p.add_argument("--followers", type=int, default=2)
    p.add_argument("--rate", type=float, default=1000.0, help="actions/s, phase a")
    p.add_argument("--duration", type=float, default=10.0, help="seconds, phase a")
    args = p.parse_args()
    args.only = set(args.only.split(","))
    # a subset saves beside the full run instead of over it: cluster_a.json, cluster_cd.json
    report = Report("cluster" if args.only >= {"a", "b", "c", "d"}
                    else "cluster_" + "".join(sorted(args.only)))
    asyncio.run(run(args, report))
    print(f"saved {report.save()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
