"""Shared bits for bench scripts: RSS, percentiles, pacing, and the one-line result format."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

# COMPLETE_LEVEL without its shipped quota, for benchmarks (see the file)
UNBOUNDED_RULES = Path(__file__).with_name("unbounded_rules.toml")

RESULTS = Path(__file__).resolve().parent / "results"


def rss_mb(pid: int | None = None) -> float:
    """Resident set size in MiB, read from /proc."""
    with open(f"/proc/{pid or os.getpid()}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


async def paced(call: Callable[[int, int], Awaitable[None]], rate: float, seconds: float,
                submitters: int = 32) -> None:
    """Call `call(submitter, n)` about `rate` times a second for `seconds`, from
    `submitters` tasks that each wait for their own call before taking the next slot."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    slot = loop.time()

    async def submitter(k: int) -> None:
        nonlocal slot
        n = 0
        while True:
            mine = slot
            slot += 1 / rate
            if mine >= end:
                return
            await asyncio.sleep(max(0.0, mine - loop.time()))  # pacing
            n += 1
            await call(k, n)

    await asyncio.gather(*(submitter(k) for k in range(submitters)))


class Report:
    """Rows of (what, figure, unit, target, ceiling) printed as a table and saved as JSON."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.rows: list[dict[str, Any]] = []

    def add(self, what: str, value: float, unit: str, target: str = "",
            ceiling: float | None = None, ceiling_what: str = "") -> None:
        row: dict[str, Any] = {"what": what, "value": value, "unit": unit, "target": target}
        if ceiling is not None:
            row["ceiling"] = ceiling
            row["ceiling_what"] = ceiling_what
            row["ratio"] = value / ceiling if ceiling else None
        self.rows.append(row)
        ratio = f"  ratio {row['ratio']:.2f} of {ceiling_what} {ceiling:,.1f}" if ceiling else ""
        print(f"{what:<52} {value:>14,.2f} {unit:<10} target {target:<14}{ratio}", flush=True)

    def save(self) -> Path:
        RESULTS.mkdir(exist_ok=True)
        path = RESULTS / f"{self.name}.json"
        path.write_text(json.dumps({
            "bench": self.name,
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                        "platform": platform.platform()},
            "rows": self.rows,
        }, indent=2))
        return path
