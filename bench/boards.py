"""Boards with time (SPEC §11): what `follows`, a rollover and cursor paging cost.

    python -m bench.boards [--users 1000000] [--actions 20000] [--postgres]

Needs `wrk` (Debian package) for 1b.

1. Follows cost: the writer's CPU per action (decide, commit to the memory log, apply)
   on `global` alone, and on `global` followed by a `daily` and a `weekly` board, the
   two configurations alternated in the same run, the collector paced as the service's
   (`GC_THRESHOLDS`); the single board is the ceiling. Twice: each action a user's
   first (new users, every board's map growing), and each one of a returning user
   (`RETURNING` users on the boards first: their keys replaced, as most actions do).
   This is the writer's own path alone, where the boards' work weighs most: no HTTP,
   no token, no reply, and no database but a dictionary.
1b. Follows cost in the service, as SPEC §10 counts a writer's CPU per action (as for
   an action forwarded by a follower): the writer process's CPU per action posted over
   HTTP with wrk, `--service-users` users each with a token of their own, to a service
   with `global` alone and to one where `daily` and `weekly` follow it, side by side,
   every user on the boards before the rounds, which alternate; on SQLite (whose work
   runs in the writer process) and, with `--postgres`, PostgreSQL.
2. Rollover: `--users` users on `global` and on a `daily` board that follows it,
   1,000 actions/s through the writer against SQLite in a temporary folder (and
   PostgreSQL with `--postgres`); the writer's clock reaches the end of the day two
   seconds in, the writer closes the period and the archiver writes it. The writer's
   longest pause (the widest gap between two commits, and the event loop's lag seen by
   a 5 ms ticker), the time from the close's commit until `periods()` lists the archive
   complete, and RSS.
3. Paging the whole `global` board with the cursor, 100 per page: the server's time per
   page (decode the cursor, `Ranking.after`, build and encode the reply).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import orjson

from bench.common import UNBOUNDED_RULES, Report, paced, rss_mb
from bench.http_load import (
    free_port,
    fresh_pg_database,
    median_cpu,
    post_scripts,
    run_service,
    wrk_cpu,
)
from scoreboard.app import GC_THRESHOLDS
from scoreboard.core.boards import BoardDef
from scoreboard.core.commands import SubmitAction
from scoreboard.core.engine import Engine
from scoreboard.core.records import LogRecord, PeriodClosedRecord, ScoreRow, UserRow
from scoreboard.core.recovery import Restore
from scoreboard.core.rules import RuleSet
from scoreboard.read.cursor import Cursor
from scoreboard.read.views import Views
from scoreboard.storage import MemoryLog, SqliteLog
from scoreboard.storage.base import ActionLog
from scoreboard.writer.actor import Writer
from scoreboard.writer.archiver import CHUNK, Archiver

RULES = RuleSet.from_config({"COMPLETE_LEVEL": {"points": 10}})
FOLLOWERS = (BoardDef("daily", follows=("global",), reset="daily"),
             BoardDef("weekly", follows=("global",), reset="weekly"))
DAILY = (BoardDef("daily", follows=("global",), reset="daily"),)


# -- 1. follows ----------------------------------------------------------------------------

RETURNING = 50_000  # users on the boards before a returning user's action is measured


async def writer_cpu(boards: Sequence[BoardDef], actions: int, first: int,
                     returning: bool = False) -> float:
    """CPU seconds per action of the writer path: units of 500 actions, 4 in flight,
    by users new to the boards, or (`returning`) by users already on them."""
    engine = Engine(RULES, ("global", *boards))
    store = MemoryLog()
    await store.open()
    writer = Writer(engine, store, queue_size=100_000)
    task = asyncio.create_task(writer.run())

    async def feed(cmds: list[SubmitAction]) -> None:
        units = iter(range(0, len(cmds), 500))

        async def client() -> None:
            for start in units:
                await writer.submit_many(cmds[start:start + 500])

        await asyncio.gather(*(client() for _ in range(4)))

    if returning:
        await feed([SubmitAction(f"u{i}", None, "global", "COMPLETE_LEVEL", f"w{first}-{i}")
                    for i in range(RETURNING)])
    cmds = [SubmitAction(f"u{(i * 7919) % RETURNING}", None, "global", "COMPLETE_LEVEL",
                         f"f{first + i}") for i in range(actions)]
    gc.collect()
    started = time.process_time()
    await feed(cmds)
    cpu = time.process_time() - started
    writer.stop()
    await task
    await store.close()
    return cpu / actions


async def follows_cost(actions: int, rounds: int, report: Report) -> None:
    gc.set_threshold(*GC_THRESHOLDS)  # the collector paced as the service's
    await writer_cpu(FOLLOWERS, 2000, 0)  # warm up
    for returning, who in ((False, "new users"), (True, "returning users")):
        single: list[float] = []
        followed: list[float] = []
        for r in range(rounds):
            single.append(await writer_cpu((), actions, 2 * r * actions, returning))
            followed.append(await writer_cpu(FOLLOWERS, actions, (2 * r + 1) * actions,
                                             returning))
        one, three = statistics.median(single) * 1e6, statistics.median(followed) * 1e6
        report.add(f"writer path CPU, global alone, {who}", one, "µs")
        report.add(f"writer path CPU, + daily + weekly, {who}", three, "µs", "", one,
                   "global alone")


# The same boards as `FOLLOWERS`, for the service (its rules as the other benches').
FOLLOWERS_TOML = """
[rules.COMPLETE_LEVEL]
points = 10

[boards.daily]
follows = "global"
reset = "daily"

[boards.weekly]
follows = "global"
reset = "weekly"
"""

# Seconds of wrk before the rounds: each wrk thread steps through every token, so at
# 3,400 actions/s or more every one of 10,000 users has acted (these services take 8,000).
WARM_UP = 6


async def follows_service(backend: str, users: int, duration: int, rounds: int,
                          report: Report) -> None:
    """The writer process's CPU per action posted over HTTP (what SPEC §10 counts as a
    writer's CPU per action, as for a forwarded action) on `global` alone and on
    `global` followed by `daily` and `weekly`: two services side by side, each warmed
    up until its `users` users are all on its boards, then wrk rounds alternated."""
    [script] = post_scripts(users, "/api/v1/scores/actions")
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "followers.toml"
        config.write_text(FOLLOWERS_TOML)
        services = {}
        names = {"alone": "scoreboard_bench_single", "followed": "scoreboard_bench_follows"}
        try:
            for kind, rules in (("alone", UNBOUNDED_RULES), ("followed", config)):
                data = Path(tmp) / kind
                data.mkdir()
                url = (await fresh_pg_database(names[kind]) if backend == "postgres"
                       else f"sqlite:///{data}/bench.db")
                port = free_port()
                services[kind] = (run_service(url, data, port, rules), f"http://127.0.0.1:{port}")
            runs: dict[str, list[dict[str, float]]] = {kind: [] for kind in services}
            for proc, url in services.values():  # every user on the boards
                await asyncio.to_thread(wrk_cpu, proc.pid, url, WARM_UP, 64, script, "warm")
            for r in range(rounds):
                for kind, (proc, url) in services.items():
                    runs[kind].append(await asyncio.to_thread(
                        wrk_cpu, proc.pid, url, duration, 64, script, f"r{r}"))
        finally:
            for proc, _ in services.values():
                proc.terminate()
                proc.wait(30)
            if backend == "postgres":
                for name in names.values():
                    await drop_pg_database(name)
    failed = sum(run["non2xx"] + run["socket_errors"] for kinds in runs.values() for run in kinds)
    one, three = median_cpu(runs["alone"]), median_cpu(runs["followed"])
    what = f"writer CPU per HTTP action, {backend}"
    report.add(f"{what}, global alone", one, "µs")
    report.add(f"{what}, + daily + weekly", three, "µs", "<= 1.3x", one, "global alone")
    report.add(f"  failed requests, {backend} (must be 0)", failed, "")



# -- 2. rollover -----------------------------------------------------------------------------

def loaded_engine(users: int, now: float) -> tuple[Engine, float]:
    """`users` users on `global` and on the `daily` board's period holding `now`, fed in
    chunks the way recovery streams a snapshot; and the RSS (MB) that the daily board's
    period added to the engine: what "one period" weighs."""
    engine = Engine(RULES, ("global", *DAILY))
    sink = Restore(engine)
    sink.periods([], now)
    one_board = 0.0
    for board in ("global", "daily"):
        for first in range(0, users, 10_000):
            ids = range(first, min(users, first + 10_000))
            sink.scores([ScoreRow(board, f"user{i:07d}", (i * 7919) % 1_000_000, i + 1)
                         for i in ids])
            if board == "global":
                sink.users([UserRow(f"user{i:07d}", f"Player {i}", False, False)
                            for i in ids])
        gc.collect()
        one_board = rss_mb() - one_board
    sink.recent([])
    sink.end(users)
    if engine.periods["daily"] is None:
        raise SystemExit("the daily board has no period after the restore")
    gc.collect()
    return engine, one_board


class Watch:
    """A 5 ms ticker on the event loop: its lag by time, the RSS peak, GC pauses."""

    def __init__(self, rss: float) -> None:
        self.peak = rss
        self.lags: list[tuple[float, float]] = []  # (perf_counter, lag)
        self.collections: list[float] = []
        self._gc_started = 0.0
        self._ticking = False
        self._task: asyncio.Task[None] | None = None

    def lag(self, since: float, until: float) -> float:
        return max((lag for t, lag in self.lags if since <= t <= until), default=0.0)

    def _collecting(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.collections.append(time.perf_counter() - self._gc_started)

    def start(self) -> None:
        gc.callbacks.append(self._collecting)
        self._ticking = True
        self._task = asyncio.create_task(self._tick())

    async def stop(self) -> None:
        self._ticking = False
        if self._task is not None:
            await self._task
        gc.callbacks.remove(self._collecting)

    async def _tick(self) -> None:
        n = 0
        while self._ticking:
            before = time.perf_counter()
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            self.lags.append((now, now - before - 0.005))
            n += 1
            if n % 20 == 0:
                self.peak = max(self.peak, rss_mb())


async def rollover(store: ActionLog, label: str, users: int, report: Report,
                   chunk: int = CHUNK, freeze: bool = True) -> Engine:
    base_rss = rss_mb()
    lead = 3.0  # seconds of load before the day ends
    end_of_day = DAILY[0].period_at(time.time())
    assert end_of_day is not None
    engine, period_mb = loaded_engine(users, end_of_day.ends_at - 3600)
    loaded_rss = rss_mb()
    if freeze:  # the loaded engine out of the collector's reach, as after recovery
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)  # and the collector paced as the service's
    await store.open()
    shift = end_of_day.ends_at - 0.001 - time.time() - lead  # the day ends `lead` from now
    writer = Writer(engine, store, queue_size=100_000, clock=lambda: time.time() + shift)
    archiver = Archiver(engine, store, lambda: Engine(RULES, ("global", *DAILY)), chunk=chunk)
    commits: list[float] = []
    closed = asyncio.Event()
    closed_at = 0.0

    def on_commit(records: Sequence[LogRecord]) -> None:
        nonlocal closed_at
        commits.append(time.perf_counter())
        if any(isinstance(r, PeriodClosedRecord) for r in records):
            closed_at = commits[-1]  # the close's own commit: the gap after it counts
            closed.set()

    writer.listeners.append(on_commit)
    writer.listeners.append(archiver.on_commit)
    tasks = [asyncio.create_task(writer.run()), asyncio.create_task(archiver.run())]
    watch = Watch(loaded_rss)
    done = False
    rounds = 0

    async def act(k: int, n: int) -> None:
        n += rounds * 1000
        await writer.submit(SubmitAction(f"user{(k * 100_003 + n * 7919) % users:07d}", None,
                                         "global", "COMPLETE_LEVEL", f"r{k}-{n}"))

    async def load() -> None:
        nonlocal rounds
        while not done:  # 1,000 actions/s until the archive is complete
            await paced(act, 1000, 0.5)
            rounds += 1

    queryable = float("nan")
    watch.start()
    loading = asyncio.create_task(load())
    try:
        await asyncio.wait_for(closed.wait(), lead + 30)
        await asyncio.wait_for(archiver.idle(), 600)
        listed = await store.periods("daily", None, 1)
        if listed and listed[0].period == end_of_day.id and listed[0].complete:
            queryable = time.perf_counter() - closed_at
        archived_at = time.perf_counter()
        await asyncio.sleep(1.0)  # a second of load after the archive, for the record
    finally:
        done = True
        await loading
        await watch.stop()
        writer.stop()
        archiver.stop()
        await asyncio.gather(*tasks)
        await store.close()
    before = [b - a for a, b in itertools.pairwise(t for t in commits if t <= closed_at)]
    during = [b - a for a, b in itertools.pairwise(
        t for t in commits if closed_at <= t <= archived_at + 0.2)]
    print(f"  {len(commits):,} commits; longest garbage collection "
          f"{max(watch.collections, default=0) * 1000:.1f} ms; widest gap "
          f"{max(b - a for a, b in itertools.pairwise(commits)) * 1000:.1f} ms in all")
    report.add(f"{label}: widest gap between commits, close → archived", max(during) * 1000,
               "ms", "<= 50 ms", max(before) * 1000, "widest before the close")
    report.add(f"{label}: loop lag (5 ms ticker), close → archived",
               watch.lag(closed_at, archived_at) * 1000, "ms", "<= 50 ms",
               watch.lag(0, closed_at) * 1000, "before the close")
    report.add(f"{label}: longest garbage collection in the run",
               max(watch.collections, default=0) * 1000, "ms", "")
    report.add(f"{label}: close → archive of {users:,} users queryable", queryable, "s",
               "<= 30 s")
    report.add(f"{label}: RSS, engine of {users:,} users on 2 boards", loaded_rss - base_rss,
               "MB", "")
    report.add(f"{label}: RSS peak during rollover and archive, added", watch.peak - base_rss,
               "MB", "")
    report.add(f"{label}: RSS of one period of {users:,} users (the daily board's)",
               period_mb, "MB", "")
    report.add(f"{label}: RSS peak of the process", watch.peak, "MB", "<= 300 MB + 1 period",
               300 + period_mb, "300 MB + one period")
    return engine


# -- 3. paging -------------------------------------------------------------------------------

def paging(engine: Engine, report: Report) -> None:
    views = Views(engine, pseudonym_key=b"bench")
    ranking = engine.boards["global"]
    times: list[float] = []
    cursor: str | None = views.page(ranking, Cursor("global", None, 2**62, 0), 100)[
        "nextCursor"]
    pages = 1
    while cursor is not None:
        t0 = time.perf_counter()
        body = views.page(ranking, Cursor.decode(cursor), 100)
        orjson.dumps(body)
        times.append(time.perf_counter() - t0)
        cursor = body["nextCursor"]
        pages += 1
    if pages * 100 < len(ranking):
        raise SystemExit(f"paging stopped after {pages} pages of {len(ranking):,} users")
    times.sort()
    top = time.perf_counter()
    for _ in range(200):
        orjson.dumps(views.top(ranking, 100))
    first = (time.perf_counter() - top) / 200
    report.add(f"page of 100 by cursor over {len(ranking):,} users, p50",
               times[len(times) // 2] * 1000, "ms", "<= 1 ms", first * 1000, "first page")
    report.add(f"page of 100 by cursor, p99 ({pages:,} pages)",
               times[int(len(times) * 0.99)] * 1000, "ms", "<= 1 ms")


def run_all(args: argparse.Namespace) -> None:
    if args.part is not None:  # one rollover in a process of its own (below)
        report = Report(f"boards-{args.part}")
        asyncio.run(rollover_part(args, report))
        Path(args.rows_to).write_bytes(orjson.dumps(report.rows))
        return
    report = Report("boards")
    asyncio.run(follows_cost(args.actions, args.rounds, report))
    for backend in ("sqlite", "postgres") if args.postgres else ("sqlite",):
        asyncio.run(follows_service(backend, args.service_users, args.service_seconds,
                                    args.rounds, report))
    # Each rollover runs in a process of its own: RSS is the process's, and what one
    # backend's run leaves in the heap must not count against the next.
    for part in ("sqlite", "postgres") if args.postgres else ("sqlite",):
        with tempfile.NamedTemporaryFile(suffix=".json") as rows:
            subprocess.run([sys.executable, "-m", "bench.boards", "--part", part,
                            "--rows-to", rows.name, "--users", str(args.users),
                            "--chunk", str(args.chunk),
                            "--gc-freeze" if args.gc_freeze else "--no-gc-freeze"],
                           check=True)
            report.rows.extend(orjson.loads(Path(rows.name).read_bytes()))
    print(f"saved {report.save()}")


async def rollover_part(args: argparse.Namespace, report: Report) -> None:
    if args.part == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            engine = await rollover(SqliteLog(Path(tmp) / "bench.db"), "SQLite", args.users,
                                    report, args.chunk, args.gc_freeze)
        paging(engine, report)
        return
    from scoreboard.storage.postgres.log import PostgresLog

    url = await fresh_pg_database("scoreboard_bench_boards")
    try:
        await rollover(PostgresLog(url), "PostgreSQL", args.users, report, args.chunk,
                       args.gc_freeze)
    finally:
        await drop_pg_database("scoreboard_bench_boards")


async def drop_pg_database(name: str) -> None:
    import asyncpg

    from bench.http_load import PG_ADMIN

    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--users", type=int, default=1_000_000)
    p.add_argument("--actions", type=int, default=20_000, help="per round of the follows cost")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--service-users", type=int, default=10_000,
                   help="users posting to the services of the follows cost (1b)")
    p.add_argument("--service-seconds", type=int, default=3, help="per wrk round (1b)")
    p.add_argument("--chunk", type=int, default=CHUNK, help="archive rows per write")
    p.add_argument("--gc-freeze", action=argparse.BooleanOptionalAction, default=True,
                   help="gc.freeze() the loaded engine first, as the service does after "
                        "recovery (--no-gc-freeze: what the collector would cost)")
    p.add_argument("--postgres", action="store_true",
                   help="also measure 1b and roll over on PostgreSQL")
    p.add_argument("--part", choices=("sqlite", "postgres"), help=argparse.SUPPRESS)
    p.add_argument("--rows-to", help=argparse.SUPPRESS)
    run_all(p.parse_args())
    return 0


if __name__ == "__main__":
    sys.exit(main())
