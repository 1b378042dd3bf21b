"""Per-route HTTP counts and latencies: plain numbers on the hot path, Prometheus at scrape.

`scoreboard_http_requests_total{route, method, status}` and
`scoreboard_http_request_seconds{route, method}` are touched by every request. A
prometheus_client child takes a lock per `inc` and walks its buckets in Python per
`observe`, several microseconds a request; the service answers requests on one event
loop, so a dict entry and a bisect do the same job. `collect` turns the numbers into
the same two metric families when the registry is scraped.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

REQUESTS = "scoreboard_http_requests"  # exposed with its `_total` suffix
SECONDS = "scoreboard_http_request_seconds"

Observe = Callable[[str, int, float], None]


class Timing:
    """One (route, method)'s latency histogram: a count per bucket (not cumulative; the
    last bucket is +Inf) and the sum."""

    __slots__ = ("buckets", "total")

    def __init__(self, size: int) -> None:
        self.buckets = [0] * size
        self.total = 0.0


class RouteStats(Collector):
    def __init__(self, buckets: Sequence[float], registry: CollectorRegistry) -> None:
        self.bounds = (*sorted(buckets), float("inf"))
        self._les = [repr(float(b)) if b != float("inf") else "+Inf" for b in self.bounds]
        # route → ((method, status) → count, method → timing)
        self._routes: dict[str, tuple[dict[tuple[str, int], int], dict[str, Timing]]] = {}
        registry.register(self)

    def observer(self, route: str) -> Observe:
        """Counts and times one route's answers: `observe(method, status, seconds)`."""
        counts, timings = self._routes.setdefault(route, ({}, {}))
        bounds = self.bounds
        size = len(bounds)

        def observe(method: str, status: int, seconds: float) -> None:
            key = (method, status)
            counts[key] = counts.get(key, 0) + 1
            timing = timings.get(method)
            if timing is None:
                timing = timings[method] = Timing(size)
            timing.buckets[bisect_left(bounds, seconds)] += 1
            timing.total += seconds

        return observe

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def collect(self) -> Iterable[Metric]:
        return self._families(samples=True)

    def _families(self, samples: bool = False) -> Iterator[Metric]:
        requests = CounterMetricFamily(REQUESTS, "HTTP requests answered, by route",
                                       labels=["route", "method", "status"])
        seconds = HistogramMetricFamily(SECONDS, "Time to answer an HTTP request, by route",
                                        labels=["route", "method"])
        if samples:
            for route, (counts, timings) in list(self._routes.items()):
                for (method, status), n in list(counts.items()):
                    requests.add_metric([route, method, str(status)], n)
                for method, timing in list(timings.items()):
                    running = 0
                    cumulative = []
                    for le, n in zip(self._les, timing.buckets, strict=True):
                        running += n
                        cumulative.append((le, running))
                    seconds.add_metric([route, method], cumulative, timing.total)
        yield requests
        yield seconds
