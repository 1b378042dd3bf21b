"""Prometheus metrics, in a registry owned by the service (no process-global state)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from scoreboard import __version__
from scoreboard.runtime.route_stats import RouteStats

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]


class ActionCounts(Collector):
    """`scoreboard_actions_total{result}`, touched by every score action: a plain count
    per result on the hot path (a prometheus_client child takes a lock and checks its
    arguments per `inc`), the counter family when the registry is scraped."""

    NAME = "scoreboard_actions"  # exposed with its `_total` suffix

    def __init__(self, registry: CollectorRegistry) -> None:
        # ACCEPTED from the start: a dashboard expects the series before the first action
        self.counts: dict[str, int] = {"ACCEPTED": 0}
        registry.register(self)

    def describe(self) -> Iterable[Metric]:
        return [self._family()]

    def collect(self) -> Iterable[Metric]:
        family = self._family()
        for result, n in list(self.counts.items()):
            family.add_metric([result], n)
        return [family]

    def _family(self) -> CounterMetricFamily:
        return CounterMetricFamily(self.NAME, "Score actions by result", labels=["result"])


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.actions = ActionCounts(r)
        self.commit_seconds = Histogram(
            "scoreboard_commit_seconds", "Time to commit one batch to the log",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5),
            registry=r,
        )
        self.batch_size = Histogram(
            "scoreboard_commit_batch_size", "Records per committed batch",
            buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000), registry=r,
        )
        self.queue_depth = Gauge(
            "scoreboard_writer_queue_depth", "Commands waiting for the writer", registry=r
        )
        self.connections = Gauge(
            "scoreboard_live_connections", "Open live connections", ["transport"], registry=r
        )
        self.broadcasts = Counter(
            "scoreboard_broadcasts_total", "Leaderboard updates sent", ["transport"], registry=r
        )
        self.broadcast_seconds = Histogram(
            "scoreboard_broadcast_seconds", "Time to hand one update to every client",
            buckets=(0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5), registry=r,
        )
        self.auth_failures = Counter(
            "scoreboard_auth_failures_total", "Refused tokens by reason", ["reason"], registry=r
        )
        self.rate_limited_total = Counter(
            "scoreboard_rate_limited_total", "Requests refused by a rate limit", registry=r
        )
        self.listener_failures = Counter(
            "scoreboard_commit_listener_failures_total",
            "Commit listeners that raised (the write itself stood)", registry=r,
        )
        self.users = Gauge(
            "scoreboard_board_users", "Users ranked on a board", ["board"], registry=r
        )
        self.recovery_seconds = Gauge(
            "scoreboard_recovery_seconds", "Time the last start-up took to rebuild state",
            registry=r,
        )
        self.key_fetches = Counter(
            "scoreboard_jwks_fetches_total", "Identity-provider key-set fetches by result",
            ["result"], registry=r,
        )
        self.keys_stale = Gauge(
            "scoreboard_jwks_stale",
            "1 while the provider's key set could not be refreshed and the last good one "
            "is in use", registry=r,
        )

        # scoreboard_build_info{version="…"} 1
        Info("scoreboard_build", "The running release", registry=r).info({"version": __version__})

        self.refusals = Counter(
            "scoreboard_edge_refusals_total",
            "Connections and requests refused before a handler answered: deadlines "
            "(kind=timeout), connection caps (kind=cap) and the HTTP parser (kind=parser)",
            ["kind", "reason"], registry=r,
        )
        # scoreboard_http_requests_total and scoreboard_http_request_seconds
        self.http = RouteStats(
            (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 2.5, 10), r
        )
        ProcessCollector(registry=r)  # CPU, memory, open and maximum file descriptors

        # Series a dashboard expects from the start, not only after the first event.
        for transport in ("ws", "sse"):
            self.connections.labels(transport)
            self.broadcasts.labels(transport)

    def action(self, result: str, count: int = 1) -> None:
        counts = self.actions.counts
        counts[result] = counts.get(result, 0) + count

    def auth_failure(self, reason: str) -> None:
        self.auth_failures.labels(reason).inc()

    def listener_failed(self) -> None:
        self.listener_failures.inc()

    def key_fetch(self, result: str, *, stale: bool) -> None:
        self.key_fetches.labels(result).inc()
        self.keys_stale.set(1 if stale else 0)

    def refused(self, kind: str, reason: str) -> None:
        self.refusals.labels(kind, reason).inc()

    def rate_limited(self) -> None:
        self.rate_limited_total.inc()

    def observe_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.commit_seconds.observe(seconds)

    def bind_gauges(self, queue_depth: Callable[[], int],
                    board_sizes: Callable[[], dict[str, int]]) -> None:
        """Gauges read at scrape time rather than kept up to date on the hot path."""
        self.queue_depth.set_function(queue_depth)
        self._board_sizes = board_sizes

    def render(self) -> bytes:
        sizes = getattr(self, "_board_sizes", None)
        if sizes is not None:
            for board, n in sizes().items():
                self.users.labels(board).set(n)
        return generate_latest(self.registry)
