"""Run every SPEC §8 measurement and print one table.

    python -m bench [--quick] [--only core,http_load,restart,live_fanout,cluster,boards]

Each bench runs as its own process (so one cannot warm or starve another), writes
bench/results/<name>.json, and the rows are gathered here into one table with the
figure, its target, the ceiling measured in the same run and the ratio, also saved as
bench/results/summary.json beside a note of the machine (bench/results/MACHINE.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from bench.common import RESULTS

ROOT = Path(__file__).resolve().parents[1]

# name → (full arguments, quick arguments)
BENCHES: dict[str, tuple[list[str], list[str]]] = {
    "core": ([], ["--users", "200000", "--updates", "100000"]),
    "http_load": ([], ["--duration", "2", "--rounds", "1"]),
    "restart": ([], ["--users", "100000", "--records", "1000000"]),
    "live_fanout": ([], ["--viewers", "500", "--duration", "5", "--hold", "2000"]),
    "trusted": ([], ["--duration", "3", "--records", "100000", "--nats-seconds", "4"]),
    "cluster": ([], ["--users", "100000", "--records", "1000000", "--actions", "1000",
                     "--viewers", "300", "--duration", "5"]),
    "boards": (["--postgres"], ["--users", "100000", "--actions", "5000", "--rounds", "3",
                                "--service-seconds", "2"]),
}


def machine_note() -> str:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    except OSError:
        mem_kb = 0
    try:
        pg = subprocess.run(["psql", "--version"], capture_output=True, text=True).stdout.strip()
    except OSError:
        pg = "psql not found"
    return "\n".join([
        "# Machine of the last bench run",
        "",
        f"- when: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- cpu: {cpu}, {os.cpu_count()} cores; memory {mem_kb / 1048576:.1f} GiB",
        f"- os: {platform.platform()}",
        f"- python: {sys.version.split()[0]}; {pg}",
        "- load generator (wrk, viewer processes) on the same machine over loopback",
        "",
    ])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smaller sizes, a few minutes in all")
    p.add_argument("--only", help="comma-separated subset of: " + ", ".join(BENCHES))
    p.add_argument("--collect", action="store_true",
                   help="run nothing: rebuild the table from the saved results")
    args = p.parse_args()
    names = args.only.split(",") if args.only else list(BENCHES)
    failed = []
    for name in [] if args.collect else names:
        full, quick = BENCHES[name]
        print(f"\n== {name}", flush=True)
        rc = subprocess.run([sys.executable, "-m", f"bench.{name}",
                             *(quick if args.quick else full)], cwd=ROOT).returncode
        if rc != 0:
            failed.append(name)
    rows = []
    for name in names:
        path = RESULTS / f"{name}.json"
        if path.exists():
            rows += [{"bench": name, **row} for row in json.loads(path.read_text())["rows"]]
    print(f"\n{'what':<58} {'figure':>14} {'unit':<10} {'target':<16} {'ceiling':>12} ratio")
    for row in rows:
        ceiling = f"{row['ceiling']:,.1f}" if "ceiling" in row else ""
        ratio = f"{row['ratio']:.2f}" if row.get("ratio") is not None else ""
        print(f"{row['what'][:58]:<58} {row['value']:>14,.2f} {row['unit']:<10} "
              f"{row['target']:<16} {ceiling:>12} {ratio}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "summary.json").write_text(json.dumps({"rows": rows, "failed": failed}, indent=2))
    (RESULTS / "MACHINE.md").write_text(machine_note())
    if failed:
        print(f"\ncould not run: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
