"""Restart to ready with 1M users and 10M log records, from the rows and from a snapshot.

    python -m bench.restart [--backend sqlite|postgres|both] [--from rows|snapshot|both]
                            [--users 1000000] [--records 10000000]

Builds the database once (schema by the store itself, rows by bulk SQL: every user
has records/users actions, all older than the recovery window), then starts
`run.py` as a subprocess and times spawn → `/ready` answering 200. Prints the
recovery time the service measured itself, its RSS, and the CPU time the process had
used when `/ready` first answered 200 (read from /proc at that moment: on a machine
others share, a figure their load changes less than the wall time).

The bytecode of the package and of its dependencies is compiled first, as an installed
service has it (the image is built with `uv sync --compile-bytecode`, which compiles the
whole environment): with PYTHONDONTWRITEBYTECODE set, each start would otherwise compile
every module it imports again, the package's and its dependencies' (aiohttp, pyjwt,
websockets, …: a third of a second of every start on the development machine).

Each start ends with SIGTERM, and a clean shutdown writes a snapshot: the starts from
the rows delete the snapshots first; the starts from a snapshot use the one the start
before left.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sqlite3
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from bench.common import Report, rss_mb
from bench.http_load import SECRET, cpu_seconds, free_port, fresh_pg_database
from scoreboard.storage import open_store

ROOT = Path(__file__).resolve().parents[1]
OLD = 1_000_000_000.0  # 2001: far outside every recovery window


async def build(url: str, data_dir: Path, users: int, records: int) -> float:
    store = open_store(url, data_dir)
    await store.open()  # the schema, exactly as the service creates it
    await store.close()
    per_user = records // users
    started = time.perf_counter()
    if url.startswith("postgres"):
        import asyncpg
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("SET synchronous_commit = off")
            await conn.execute(f"""
                INSERT INTO action_log (seq, at, board, user_id, kind, action_type,
                    client_action_id, delta, prev_score, new_score)
                SELECT g, {OLD} + g * 0.001, 'global', 'user' || ((g - 1) % {users}),
                    'action', 'COMPLETE_LEVEL', 'c' || g, 10,
                    ((g - 1) / {users}) * 10, ((g - 1) / {users} + 1) * 10
                FROM generate_series(1, {per_user * users}) g""")
            await conn.execute(f"""
                INSERT INTO board_scores (board, user_id, score, reached_seq)
                SELECT 'global', 'user' || u, {per_user * 10}, {(per_user - 1) * users} + u + 1
                FROM generate_series(0, {users - 1}) u""")
            await conn.execute(f"""
                INSERT INTO users (user_id, display_name, frozen, hidden)
                SELECT 'user' || u, 'Player ' || u, false, false
                FROM generate_series(0, {users - 1}) u""")
            await conn.execute("VACUUM ANALYZE")  # settle the bulk load before timing
            await conn.execute("CHECKPOINT")
        finally:
            await conn.close()
    else:
        path = url.removeprefix("sqlite:///")
        db = sqlite3.connect("/" + path if not path.startswith("/") else path)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=OFF")
        db.execute(f"""
            WITH RECURSIVE c(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM c
                                    WHERE g < {per_user * users})
            INSERT INTO action_log (seq, at, board, user_id, kind, action_type,
                client_action_id, delta, prev_score, new_score)
            SELECT g, {OLD} + g * 0.001, 'global', 'user' || ((g - 1) % {users}),
                'action', 'COMPLETE_LEVEL', 'c' || g, 10,
                ((g - 1) / {users}) * 10, ((g - 1) / {users} + 1) * 10 FROM c""")
        db.execute(f"""
            WITH RECURSIVE u(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM u WHERE i < {users - 1})
            INSERT INTO board_scores (board, user_id, score, reached_seq)
            SELECT 'global', 'user' || i, {per_user * 10}, {(per_user - 1) * users} + i + 1
            FROM u""")
        db.execute(f"""
            WITH RECURSIVE u(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM u WHERE i < {users - 1})
            INSERT INTO users (user_id, display_name, frozen, hidden)
            SELECT 'user' || i, 'Player ' || i, 0, 0 FROM u""")
        db.commit()
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()
    return time.perf_counter() - started


def compile_package() -> None:
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "scoreboard")],
                   check=True)
    # The environment the service runs in, as --compile-bytecode leaves it. Not checked:
    # a few dependencies ship files that are not meant to compile (templates, tests).
    subprocess.run([sys.executable, "-m", "compileall", "-q", "-j", "0",
                    sysconfig.get_paths()["purelib"]], stdout=subprocess.DEVNULL)


def time_restart(url: str, data_dir: Path) -> tuple[float, float, float, int, float]:
    """(seconds to ready, recovery seconds, RSS MB, last seq, CPU seconds to ready)."""
    port = free_port()
    env = {**os.environ, "SCOREBOARD_JWT_SECRET": SECRET}
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "run.py"), "--http-port", str(port), "--ws-port",
         str(free_port()), "--data-dir", str(data_dir), "--database-url", url,
         "--log-level", "WARNING"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError("the service exited during start-up")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=5) as r:
                    if r.status == 200:
                        cpu = cpu_seconds(proc.pid)
                        last_seq = json.load(r)["lastSeq"]
                        break
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(0.02)  # polling a subprocess we cannot await
        ready = time.perf_counter() - started
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as r:
            metrics = r.read().decode()
        m = re.search(r"^scoreboard_recovery_seconds ([\d.e+-]+)$", metrics, re.M)
        recovery = float(m.group(1)) if m else float("nan")
        return ready, recovery, rss_mb(proc.pid), last_seq, cpu
    finally:
        proc.terminate()
        proc.wait(60)


async def snapshots(url: str, *, clear: bool = False) -> list[tuple[int, int]]:
    """(seq, bytes) of the stored snapshots; with `clear`, delete them first."""
    if url.startswith("postgres"):
        import asyncpg
        conn = await asyncpg.connect(url)
        try:
            if clear:
                await conn.execute("DELETE FROM snapshots")
            rows = await conn.fetch("SELECT seq, length(body) FROM snapshots ORDER BY seq")
            return [(int(r[0]), int(r[1])) for r in rows]
        finally:
            await conn.close()
    path = url.removeprefix("sqlite:///")
    db = sqlite3.connect("/" + path if not path.startswith("/") else path)
    try:
        if clear:
            db.execute("DELETE FROM snapshots")
            db.commit()
        return [(int(a), int(b)) for a, b in
                db.execute("SELECT seq, length(body) FROM snapshots ORDER BY seq")]
    finally:
        db.close()


def from_rows(url: str, data_dir: Path) -> tuple[float, float, float, int, float]:
    asyncio.run(snapshots(url, clear=True))
    return time_restart(url, data_dir)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    p.add_argument("--from", dest="starts", choices=["rows", "snapshot", "both"],
                   default="both", help="time the starts from the rows, from a snapshot, "
                   "or both (a snapshot start first leaves a snapshot with one untimed start)")
    p.add_argument("--users", type=int, default=1_000_000)
    p.add_argument("--records", type=int, default=10_000_000)
    args = p.parse_args()
    report = Report("restart")
    compile_package()
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    for backend in backends:
        with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as tmp:
            data = Path(tmp)
            if backend == "postgres":
                url = asyncio.run(fresh_pg_database("scoreboard_bench_restart"))
            else:
                url = f"sqlite:///{data / 'restart.db'}"
            built = asyncio.run(build(url, data, args.users, args.records))
            print(f"built {backend}: {args.users:,} users, {args.records:,} records "
                  f"in {built:.0f} s", flush=True)
            label = f"{args.users // 1000}k users / {args.records / 1_000_000:g}M records"
            # The first start also warms the OS page cache; a real restart finds it warm.
            cold = from_rows(url, data)
            if args.starts != "snapshot":
                ready, recovery, rss, last_seq, cpu = min(cold, from_rows(url, data))
                report.add(f"restart to ready, {backend}, {label} (best of 2)", ready, "s",
                           "<= 5 s")
                report.add(f"  CPU to ready, {backend}", cpu, "s")
                report.add(f"  first start after the build, {backend}", cold[0], "s")
                report.add(f"  recovery inside the service, {backend}", recovery, "s")
                report.add(f"  RSS after recovery, {backend}", rss, "MB")
                report.add(f"  last seq recovered, {backend}", last_seq, "")
            if args.starts == "rows":
                continue
            # The last start's shutdown wrote a snapshot of the last seq.
            (seq, size), *_ = reversed(asyncio.run(snapshots(url)))
            ready, recovery, rss, last_seq, cpu = min(time_restart(url, data),
                                                      time_restart(url, data))
            report.add(f"restart to ready from a snapshot, {backend}, {label} (best of 2)",
                       ready, "s", "<= 2 s")
            report.add(f"  CPU to ready, {backend}", cpu, "s")
            report.add(f"  recovery inside the service, {backend}", recovery, "s")
            report.add(f"  RSS after recovery, {backend}", rss, "MB")
            report.add(f"  snapshot size at seq {seq}, {backend}", size / 1e6, "MB")
            report.add(f"  last seq recovered, {backend}", last_seq, "")
    print(f"saved {report.save()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
