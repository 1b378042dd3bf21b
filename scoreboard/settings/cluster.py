"""Settings of a process among several on one PostgreSQL database (`[cluster]`).

Read by `scoreboard.settings.model` like every other section; kept here, next to the parts
that use them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class Section(Protocol):
    """Typed reads from one TOML table (`scoreboard.settings.model` provides it)."""

    def text(self, key: str, *, allow_empty: bool = True) -> str: ...
    def integer(self, key: str, lo: int, hi: int) -> int: ...
    def number(self, key: str, lo: float, hi: float) -> float: ...
    def flag(self, key: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class ClusterSettings:
    """Several processes on one PostgreSQL database (`[cluster]`, SPEC §8)."""

    enabled: bool = True  # a writer on PostgreSQL takes its followers' writes
    internal_host: str = "127.0.0.1"
    internal_port: int = 0
    advertise_host: str = ""
    secret: str = ""
    poll_interval: float = 0.5
    max_lag_seqs: int = 100_000
    max_lag_seconds: float = 10.0
    forward_timeout: float = 10.0
    forward_batch: int = 256
    max_wait_seconds: float = 5.0



def read_cluster(cl: Section) -> ClusterSettings:
    """`[cluster]` from its TOML table; every error names `cluster.<key>`."""
    return ClusterSettings(
        enabled=cl.flag("enabled"),
        internal_host=cl.text("internal_host", allow_empty=False),
        internal_port=cl.integer("internal_port", 0, 65535),
        advertise_host=cl.text("advertise_host"),
        secret=cl.text("secret"),
        poll_interval=cl.number("poll_interval", 0.01, 60.0),
        max_lag_seqs=cl.integer("max_lag_seqs", 0, 2**53),
        max_lag_seconds=cl.number("max_lag_seconds", 0.0, 86400.0),
        forward_timeout=cl.number("forward_timeout", 0.1, 600.0),
        forward_batch=cl.integer("forward_batch", 1, 10_000),
        max_wait_seconds=cl.number("max_wait_seconds", 0.0, 60.0),
    )
