"""Per-route HTTP metrics kept as plain numbers: what a scrape shows is what Prometheus'
own Counter and Histogram would show for the same requests."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram

from scoreboard.runtime.metrics import Metrics
from scoreboard.runtime.route_stats import RouteStats

BUCKETS = (0.001, 0.01, 0.1)


def test_counts_and_buckets_as_prometheus_has_them() -> None:
    registry = CollectorRegistry()
    stats = RouteStats(BUCKETS, registry)
    reference = Histogram("ref_seconds", "", ["route", "method"], buckets=BUCKETS,
                          registry=registry)
    observe = stats.observer("/a")
    samples = [0.0005, 0.001, 0.002, 0.01, 0.05, 3.0]  # bounds are inclusive (le)
    for s in samples:
        observe("GET", 200, s)
        reference.labels("/a", "GET").observe(s)
    observe("GET", 404, 0.02)
    stats.observer("/b")("POST", 200, 0.2)

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert value("scoreboard_http_requests_total", route="/a", method="GET",
                 status="200") == 6
    assert value("scoreboard_http_requests_total", route="/a", method="GET",
                 status="404") == 1
    assert value("scoreboard_http_requests_total", route="/b", method="POST",
                 status="200") == 1
    for le in ("0.001", "0.01", "0.1", "+Inf"):
        want = value("ref_seconds_bucket", route="/a", method="GET", le=le)
        got = value("scoreboard_http_request_seconds_bucket", route="/a", method="GET", le=le)
        assert got == (want or 0) + (1 if le in ("0.1", "+Inf") else 0), le  # + the 404
    assert value("scoreboard_http_request_seconds_count", route="/a", method="GET") == 7
    total = value("scoreboard_http_request_seconds_sum", route="/b", method="POST")
    assert total is not None and abs(total - 0.2) < 1e-9


def test_the_service_metrics_expose_both_families() -> None:
    metrics = Metrics()
    metrics.http.observer("/api/v1/leaderboard")("GET", 304, 0.0002)
    text = metrics.render().decode()
    assert ('scoreboard_http_requests_total{method="GET",route="/api/v1/leaderboard",'
            'status="304"} 1.0') in text
    assert "# TYPE scoreboard_http_request_seconds histogram" in text
