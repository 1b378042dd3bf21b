"""The ranking core at scale: updates/s, top-10 and rank lookup times, RSS at 1M users.

    python -m bench.core [--users 1000000] [--updates 300000]
"""

from __future__ import annotations

import argparse
import gc
import random
import time
import tracemalloc

from bench.common import Report, rss_mb
from scoreboard.core.commands import SubmitAction
from scoreboard.core.engine import Engine
from scoreboard.core.ranking import Ranking
from scoreboard.core.records import ScoreRow, Snapshot, UserRow
from scoreboard.core.recovery import restore
from scoreboard.core.rules import RuleSet


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--users", type=int, default=1_000_000)
    p.add_argument("--updates", type=int, default=300_000)
    args = p.parse_args()
    rng = random.Random(7)
    report = Report("core")
    base_rss = rss_mb()

    # 1M users on one board, loaded the way recovery loads them.
    ranking = Ranking("global")
    started = time.perf_counter()
    ranking.load(((f"user{i:07d}", rng.randrange(0, 1_000_000), i + 1) for i in range(args.users)),
                 args.users)
    load_s = time.perf_counter() - started
    gc.collect()
    report.add(f"bulk load {args.users:,} users", load_s, "s")
    report.add(f"RSS with {args.users:,} users on a board", rss_mb() - base_rss, "MB",
               "<= 300 MB")

    # Each update ordered before the next (a ranking stages `set` until it settles: the
    # writer settles once per group it commits); then in groups of 500, as under load.
    users = [f"user{rng.randrange(args.users):07d}" for _ in range(args.updates)]
    seq = args.users + 1
    for group, label in ((1, "one at a time"), (500, "in groups of 500")):
        started = time.perf_counter()
        for start in range(0, len(users), group):
            for user in users[start:start + group]:
                score = ranking.score(user) or 0
                ranking.set(user, score + 10, seq)
                seq += 1
            ranking.settle()
        elapsed = time.perf_counter() - started
        report.add(f"ranking updates (score +10, re-rank), {label}", args.updates / elapsed,
                   "updates/s", ">= 100,000")

    n = 20_000
    started = time.perf_counter()
    for _ in range(n):
        ranking.top(10)
    report.add("top-10 query", (time.perf_counter() - started) / n * 1e6, "µs", "<= 5 µs")
    probes = [f"user{rng.randrange(args.users):07d}" for _ in range(n)]
    started = time.perf_counter()
    for user in probes:
        ranking.rank(user)
    report.add("rank of one user", (time.perf_counter() - started) / n * 1e6, "µs", "<= 10 µs")

    # The whole engine as recovery builds it: ranking, display names, user rows.
    del ranking, users, probes
    rules = RuleSet.from_config({"COMPLETE_LEVEL": {"points": 10}})

    def snapshot() -> Snapshot:
        return Snapshot(
            last_seq=args.users,
            scores=[ScoreRow("global", f"user{i:07d}", (i * 7919) % 1_000_000, i + 1)
                    for i in range(args.users)],
            users=[UserRow(f"user{i:07d}", f"Player {i}", False, False)
                   for i in range(args.users)],
            recent=[],
        )

    snap = snapshot()
    started = time.perf_counter()
    restore(Engine(rules), snap)
    report.add(f"engine restore of {args.users:,} users with names",
               time.perf_counter() - started, "s")
    del snap
    gc.collect()
    # Live heap, not RSS: RSS here would also count the freed snapshot rows that the
    # allocator keeps (see bench.restart for the process RSS after a real recovery).
    tracemalloc.start()
    snap = snapshot()
    engine = Engine(rules)
    restore(engine, snap)
    del snap
    gc.collect()
    live, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    report.add("live heap of that engine (ranking + names)", live / 2**20, "MB", "<= 300 MB")
    del engine

    # The whole decide → apply path of the engine, without storage.
    engine = Engine(rules)
    cmds = [SubmitAction(f"p{i % 50_000}", None, "global", "COMPLETE_LEVEL", f"c{i}")
            for i in range(100_000)]
    started = time.perf_counter()
    now = time.time()
    for i in range(0, len(cmds), 500):
        pending = engine.new_pending()
        for c in cmds[i:i + 500]:
            engine.decide(c, now, pending)
        for r in pending.records:
            engine.apply(r)
    elapsed = time.perf_counter() - started
    report.add("engine decide+apply (batches of 500)", len(cmds) / elapsed, "actions/s")
    print(f"saved {report.save()}")


if __name__ == "__main__":
    main()
