"""Live fan-out: latency, per-client cost and capacity of the WebSocket broadcast.

    python bench/live_fanout.py [--viewers 2000] [--rate 1000] [--duration 15]
                                [--rounds 60] [--hold 16000] [--sse 500] [--skip-hold]

About two minutes on the 2-core development machine.

Runs the real service in this process (SQLite in a temporary folder, uvloop when
installed, rate limits and abuse flags off) and viewer clients in child processes
(`bench/live_viewers.py`), everything on 127.0.0.1, every phase bounded in time:

a. commit → receive latency at `--viewers` WebSocket viewers while `--rate` actions/s
   (through the writer: decide, SQLite commit, apply) keep changing the top 10. For a
   sample of commits and every viewer: from the commit to the arrival of the first update
   carrying it. Target p99 ≤ 100 ms; printed next to the bound measured in the same run
   (the broadcast interval plus one bare write loop over the same sockets: the wait that
   coalescing adds by design, and the time the unavoidable writes take). Also shown: the
   age of the oldest change in each update, the worst case a viewer sees.
b. per-client cost of one broadcast (`Hub.fanout`) next to a bare `transport.write` of
   the same frame to the same clients, alternating, same run. Target ≤ 1.2 times. For
   reference, websockets' own `broadcast()` (which frames the message per client).
c. the most viewers one process holds: `--hold` WebSocket viewers plus `--sse` SSE viewers,
   RSS after one update has reached them all. Target ≥ 15,000 at ≤ 400 MB; the ceiling
   is this process's open-file limit.

Exits non-zero only when it could not run (the service or viewers failed to start).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import gc
import itertools
import json
import logging
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/live_fanout.py` as well as `-m bench.…`
    sys.path.insert(0, str(ROOT))

from bench.common import UNBOUNDED_RULES, Report, paced, percentile, rss_mb  # noqa: E402
from scoreboard.app import Service  # noqa: E402
from scoreboard.core.commands import SubmitAction  # noqa: E402
from scoreboard.core.records import LogRecord  # noqa: E402
from scoreboard.live.hub import Group  # noqa: E402
from scoreboard.live.messages import TopView  # noqa: E402
from scoreboard.settings.model import load_settings  # noqa: E402

VIEWERS = ROOT / "bench" / "live_viewers.py"
PLAYERS = [f"player{i:02d}" for i in range(12)]  # every action moves the top 10
HOLD_PER_PROCESS = 4000  # well under the open-file limit of each viewer process
LATENCY_PER_PROCESS = 1000  # a core's worth of reading at 20 updates/s
SAMPLED_COMMITS = 400


class BenchError(Exception):
    """The bench could not run."""


class ViewerProcess:
    """One child process of viewers, driven line by line over its stdin/stdout."""

    def __init__(self, proc: asyncio.subprocess.Process, count: int) -> None:
        self.proc = proc
        self.count = count
        self.connected = 0

    @classmethod
    async def start(cls, kind: str, port: int, count: int) -> ViewerProcess:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(VIEWERS), kind, str(port), str(count),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=1 << 30,
        )
        return cls(proc, count)

    async def line(self, within: float = 120) -> str:
        assert self.proc.stdout is not None
        raw = await asyncio.wait_for(self.proc.stdout.readline(), within)
        if not raw:
            raise BenchError(f"a viewer process exited ({self.proc.returncode})")
        return raw.decode().strip()

    async def ready(self) -> int:
        words = (await self.line()).split()
        if words[0] != "READY":
            raise BenchError(f"unexpected from a viewer process: {words}")
        self.connected = int(words[1])
        return self.connected

    async def ask(self, command: str) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{command}\n".encode())
        await self.proc.stdin.drain()
        return await self.line()

    async def quit(self) -> None:
        if self.proc.returncode is None and self.proc.stdin is not None:
            self.proc.stdin.write(b"QUIT\n")
            try:
                await self.proc.stdin.drain()
                await asyncio.wait_for(self.proc.wait(), 30)
            except (TimeoutError, ConnectionError):
                self.proc.kill()
                await self.proc.wait()


async def spawn(kind: str, port: int, total: int, per_process: int) -> list[ViewerProcess]:
    sizes = [per_process] * (total // per_process)
    if total % per_process:
        sizes.append(total % per_process)
    procs = [await ViewerProcess.start(kind, port, n) for n in sizes]
    await asyncio.gather(*(p.ready() for p in procs))
    return procs


class CommitLog:
    """(board version, monotonic time) after every committed batch: the writer listener."""

    def __init__(self, service: Service) -> None:
        self.ranking = service.engine.boards["global"]
        self.versions: list[int] = []
        self.times: list[float] = []

    def __call__(self, records: Sequence[LogRecord]) -> None:
        self.versions.append(self.ranking.version)
        self.times.append(time.monotonic())

    def first_after(self, version: int) -> float | None:
        """When the oldest change newer than `version` was committed."""
        i = bisect.bisect_right(self.versions, version)
        return self.times[i] if i < len(self.times) else None


async def drive_actions(service: Service, rate: float, seconds: float, tag: str) -> int:
    """Submit about `rate` actions/s for `seconds`, from 32 paced submitters."""
    done = 0

    async def submit(k: int, n: int) -> None:
        nonlocal done
        player = PLAYERS[(k * 7 + n) % len(PLAYERS)]
        await service.writer.submit(SubmitAction(
            user_id=player, display_name=player.title(), board="global",
            action_type="COMPLETE_LEVEL", client_action_id=f"{tag}-{k}-{n}",
        ))
        done += 1

    await paced(submit, rate, seconds)
    return done


def commit_latencies(log: CommitLog, records: list[list[list[float]]], since: float,
                     until: float) -> list[float]:
    """For sampled commits in [since, until] and every viewer: from the commit to the
    arrival of the first update that carries it."""
    return receive_latencies([(v, t) for v, t in zip(log.versions, log.times, strict=True)
                              if since <= t <= until], records)


def receive_latencies(commits: list[tuple[int, float]],
                      records: list[list[list[float]]]) -> list[float]:
    """For a sample of (version, time committed) and every viewer: that time → the
    arrival of the first update with at least that version."""
    ordered = sorted(commits)
    sample = ordered[::max(1, len(ordered) // SAMPLED_COMMITS)]
    out = []
    for viewer in records:
        versions = [int(v) for v, _ in viewer]
        for version, committed in sample:
            i = bisect.bisect_left(versions, version)
            if i < len(viewer):
                out.append(viewer[i][1] - committed)
    return out


def update_ages(log: CommitLog, records: list[list[list[float]]], since: float,
                until: float) -> list[float]:
    """For every update a viewer got: the age of the oldest change in it."""
    out = []
    for viewer in records:
        for (prev, _), (version, at) in itertools.pairwise(viewer):
            committed = log.first_after(int(prev))
            if committed is None or not since <= committed <= until or version <= prev:
                continue
            out.append(at - committed)
    return out


async def phase_latency(service: Service, report: Report, args: argparse.Namespace,
                        procs: list[ViewerProcess], log: CommitLog) -> None:
    await drive_actions(service, args.rate, 2.0, "warmup")
    since = time.monotonic()
    done = await drive_actions(service, args.rate, args.duration, "run")
    until = time.monotonic()
    version = service.engine.boards["global"].version
    seen = sum([int((await p.ask(f"WAIT {version}")).split()[1]) for p in procs])
    records: list[list[list[float]]] = []
    for p in procs:
        records += json.loads(await p.ask("REPORT"))["records"]
    lat = commit_latencies(log, records, since, until)
    ages = update_ages(log, records, since, until)
    held = sum(p.connected for p in procs)
    print(f"(a) {held} viewers, {done / args.duration:,.0f} actions/s for {args.duration:g} s, "
          f"{len(log.versions):,} commits, {len(lat):,} (commit, viewer) pairs measured, "
          f"{seen} viewers got the final version", flush=True)
    floor = await bare_loop_seconds(ws_group(service))
    interval = service.settings.live.broadcast_interval
    report.add("(a) commit→receive p50", percentile(lat, 50) * 1000, "ms", "")
    report.add("(a) commit→receive p99", percentile(lat, 99) * 1000, "ms", "<= 100",
               (interval + floor) * 1000, "design bound: interval + one bare write loop, ms")
    report.add("(a) oldest change in each update, p99", percentile(ages, 99) * 1000, "ms", "")


def ws_group(service: Service) -> Group:
    groups = [g for g in service.live.hub.groups() if g.board == "global" and g.limit == 10]
    if not groups or not groups[0].ws:
        raise BenchError("no WebSocket viewers are connected")
    return groups[0]


async def drained(group: Group, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while any(c.sink.buffered() for c in group.ws):
        if time.monotonic() > deadline:
            return
        await asyncio.sleep(0.01)  # let the viewers read


async def bare_loop_seconds(group: Group) -> float:
    await drained(group)
    frame = group.current.ws_frame
    clients = list(group.ws)
    started = time.perf_counter()
    for c in clients:
        c.sink.write(frame)
    return time.perf_counter() - started


async def phase_cost(service: Service, report: Report, rounds: int) -> None:
    from websockets.asyncio.server import broadcast

    group = ws_group(service)
    hub = service.live.hub
    data = {"board": "global", "top": group.current.top, "timestamp": "bench"}
    fan: list[float] = []
    bare: list[float] = []
    lib: list[float] = []
    version = 10**12
    orders = list(itertools.permutations(("fan", "bare", "lib")))
    for k in range(rounds):
        for what in orders[k % len(orders)]:  # every kind in every position equally often
            version += 1
            clients = list(group.ws)
            await drained(group)
            await asyncio.sleep(0.03)  # viewers idle again: every kind starts alike
            started = time.perf_counter_ns()
            if what == "fan":
                view = TopView.build(10, {**data, "version": version})  # encoding included
                hub.fanout(group, view)
            elif what == "bare":
                frame = group.current.ws_frame
                for c in clients:
                    c.sink.write(frame)
            else:
                conns = [c.sink.conn for c in clients]  # type: ignore[attr-defined]
                broadcast(conns, group.current.ws_message, text=True)
            per_client = (time.perf_counter_ns() - started) / len(clients)
            {"fan": fan, "bare": bare, "lib": lib}[what].append(per_client)
    n = len(group.ws)
    fan_ns, bare_ns, lib_ns = (statistics.median(x) for x in (fan, bare, lib))
    print(f"(b) {rounds} rounds each over {n} viewers (medians per client)", flush=True)
    report.add("(b) broadcast per client (encode once + fanout)", fan_ns / 1000, "µs", "")
    report.add("(b) bare transport.write per client", bare_ns / 1000, "µs", "")
    report.add("(b) broadcast / bare write", fan_ns / bare_ns, "times", "<= 1.2",
               1.0, "bare write")
    report.add("(b) websockets.broadcast() per client, for reference", lib_ns / 1000, "µs", "",
               bare_ns / 1000, "bare write µs")


async def phase_hold(service: Service, report: Report, args: argparse.Namespace) -> None:
    hub = service.live.hub
    gc.collect()
    baseline = rss_mb()
    started = time.monotonic()
    ws_procs = await spawn("ws", service.ws_port, args.hold, HOLD_PER_PROCESS)
    sse_procs = await spawn("sse", service.http_port, args.sse, HOLD_PER_PROCESS) \
        if args.sse else []
    ramp = time.monotonic() - started
    held_ws, held_sse = hub.count("ws"), hub.count("sse")
    try:
        leader = service.engine.boards["global"].top(1)[0][0]  # its score moves the top 10
        await service.writer.submit(SubmitAction(
            user_id=leader, display_name=leader.title(), board="global",
            action_type="COMPLETE_LEVEL", client_action_id=f"hold-{time.time()}",
        ))
        version = service.engine.boards["global"].version
        t0 = time.monotonic()
        seen = [int((await p.ask(f"WAIT {version}")).split()[1]) for p in ws_procs + sse_procs]
        spread = time.monotonic() - t0
        gc.collect()
        rss = rss_mb()
        fd_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        print(f"(c) {held_ws:,} WebSocket + {held_sse:,} SSE viewers held after a {ramp:.1f} s "
              f"ramp; {sum(seen):,} got the next update within {spread:.2f} s; "
              f"baseline RSS {baseline:.0f} MB", flush=True)
        report.add("(c) WebSocket viewers held", held_ws, "viewers", ">= 15,000",
                   fd_limit, "open-file limit")
        report.add("(c) SSE viewers held alongside", held_sse, "viewers", "")
        report.add("(c) RSS with all of them", rss, "MB", "<= 400", baseline, "RSS before, MB")
        per = (rss - baseline) * 1024 / max(1, held_ws + held_sse)
        report.add("(c) memory per viewer", per, "KB", "")
    finally:
        for p in ws_procs + sse_procs:
            await p.quit()


async def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="live-fanout-") as tmp:
        settings = load_settings({
            "server.http_port": 0, "server.ws_port": 0, "server.data_dir": tmp,
            "auth.jwt_secret": "bench-secret-0123456789abcdef0123456789",
            "limits.user_per_minute": 0, "limits.ip_per_minute": 0,
            "abuse.actions_per_minute": 0, "abuse.points_per_minute": 0,
            "live.max_connections": 0, "live.max_connections_per_user": 0,
            # every viewer process connects from 127.0.0.1: no per-address caps here
            "live.max_connections_per_ip": 0, "edge.max_connections_per_ip": 0,
            "writer.queue_size": 100_000,
        }, environ={}, config_file=str(UNBOUNDED_RULES))
        service = Service.build(settings)
        log = CommitLog(service)
        service.writer.listeners.append(log)
        await service.start()
        report = Report("live_fanout")
        try:
            procs = await spawn("ws", service.ws_port, args.viewers, LATENCY_PER_PROCESS)
            try:
                if sum(p.connected for p in procs) == 0:
                    raise BenchError("no viewer could connect")
                await phase_latency(service, report, args, procs, log)
                await phase_cost(service, report, args.rounds)
            finally:
                handlers = set(service.live.ws.server.handler_tasks) \
                    if service.live.ws.server else set()
                for p in procs:
                    await p.quit()
            if handlers:  # the last phase's sockets are gone on this side too
                await asyncio.wait(handlers, timeout=30)
            if not args.skip_hold:
                await phase_hold(service, report, args)
        finally:
            await service.stop()
        print(f"saved {report.save()}")
    return 0


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--viewers", type=int, default=2000)
    p.add_argument("--rate", type=float, default=1000.0)
    p.add_argument("--duration", type=float, default=15.0)
    p.add_argument("--rounds", type=int, default=60)
    p.add_argument("--hold", type=int, default=16_000)
    p.add_argument("--sse", type=int, default=500)
    p.add_argument("--skip-hold", action="store_true")
    return p.parse_args(argv)


def run(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    try:
        import uvloop
    except ImportError:
        runner: Any = asyncio.run
    else:
        runner = uvloop.run
    try:
        result: int = runner(main(args))
        return result
    except BenchError as exc:
        print(f"live_fanout could not run: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(run())
