"""A process's role without PostgreSQL: where writes go, readiness and lag, and the
`[cluster]` settings.

The `PostgresLog` a node is given is never opened here: the parts tested never touch
it. Starting a role (publishing the writer's address, tailing, taking over) needs the
database and is covered by `tests/integration/test_cluster.py`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

import pytest

from scoreboard.cluster.forward import NO_ANSWER
from scoreboard.cluster.node import Node, NotTheWriter
from scoreboard.cluster.progress import Progress
from scoreboard.core.commands import ActionResult
from scoreboard.runtime.metrics import Metrics
from scoreboard.settings.cluster import ClusterSettings
from scoreboard.settings.model import SettingsError, load_settings
from scoreboard.storage.memory import MemoryLog
from scoreboard.storage.postgres.log import PostgresLog
from scoreboard.writer.actor import StoreDown
from tests.writer.test_writer import Running, act

UNUSED_DSN = "postgresql://127.0.0.1:9/never_connected"


@pytest.fixture
async def running() -> AsyncIterator[Running]:
    r = Running(MemoryLog())
    await r.start()
    yield r
    await r.stop()


def node(running: Running, role: str, **cluster: object) -> tuple[Node, Metrics]:
    """A node of `role` over the running writer; `cluster` overrides `[cluster]` keys."""
    overrides: dict[str, object] = {"server.role": role, "server.database_url": UNUSED_DSN}
    overrides |= {f"cluster.{k}": v for k, v in cluster.items()}
    settings = load_settings(overrides, environ={})
    metrics = Metrics()
    progress = Progress(lambda: running.engine.last_seq)
    n = Node(settings, PostgresLog(UNUSED_DSN, follower=role != "writer"), running.engine,
             running.writer, [], b"secret", metrics, progress)
    return n, metrics


def lag_gauges(metrics: Metrics) -> tuple[float | None, float | None]:
    r = metrics.registry
    return r.get_sample_value("scoreboard_lag_seqs"), r.get_sample_value("scoreboard_lag_seconds")


async def test_the_writer_decides_here_and_is_always_ready(running: Running) -> None:
    """A writer submits to its own writer, takes batches, and is never behind."""
    n, metrics = node(running, "writer", max_lag_seqs=0)
    assert n.is_writer and n.progress.patience == 0.0
    result = await n.submit(act("amy", "c1"))
    assert isinstance(result, ActionResult) and result.seq == 1
    out = await n.submit_many([act("bob", "c1"), act("cy", "c1")])
    assert [r.seq for r in out] == [2, 3]  # type: ignore[union-attr]
    n.tail.heard(100)  # a writer's readiness ignores the tail
    assert n.readiness() == (True, {"role": "writer", "lagSeqs": 0, "lagSeconds": 0.0})
    assert lag_gauges(metrics) == (0.0, 0.0)


async def test_a_follower_refuses_batches_and_forwards_the_rest(running: Running) -> None:
    """A follower never decides: batches are refused, single commands go to the
    forwarder (here no writer answers in time)."""
    n, _ = node(running, "follower", forward_timeout=0.1)
    assert not n.is_writer and n.progress.patience == 5.0
    with pytest.raises(NotTheWriter) as info:
        await n.submit_many([act("amy", "c1")])
    assert info.value.code == "OVERLOADED" and info.value.retry_after == 5.0
    with pytest.raises(StoreDown):
        await n.submit(act("amy", "c1"))
    assert running.engine.last_seq == 0


async def test_a_follower_is_ready_only_within_its_lag_limits(running: Running) -> None:
    """Behind by more seqs or seconds than allowed, or the log unreadable: not ready."""
    n, metrics = node(running, "standby", max_lag_seqs=10, max_lag_seconds=2.0)
    now = [500.0]
    n.tail.clock = lambda: now[0]
    ok, details = n.readiness()
    assert ok and details == {"role": "standby", "lagSeqs": 0, "lagSeconds": 0.0,
                              "writer": "connecting"}
    n.tail.heard(10)
    now[0] += 1.5
    assert n.readiness()[0] and lag_gauges(metrics) == (10.0, 1.5)
    now[0] += 1.0
    ok, details = n.readiness()
    assert not ok and details["lagSeconds"] == 2.5
    n.tail.heard(11)
    now[0] -= 2.0  # back within the seconds, but now too many seqs behind
    ok, details = n.readiness()
    assert not ok and (details["lagSeqs"], details["lagSeconds"]) == (11, 0.5)
    n2, _ = node(running, "follower")
    n2.tail.store_ok = False
    assert n2.readiness()[0] is False


async def test_a_follower_without_a_writer_is_not_ready_and_shows_no_address(
        running: Running) -> None:
    """Readiness says whether writes can be forwarded and why not, never where to."""
    n, _ = node(running, "follower")
    n.forwarder.writer_url = "ws://10.1.2.3:7000/"
    ok, details = n.readiness()
    assert ok and details["writer"] == "connected" and "writerProblem" not in details
    assert "10.1.2.3" not in repr(details)
    n.forwarder.writer_url, n.forwarder.unreachable = None, NO_ANSWER
    ok, details = n.readiness()
    assert not ok and (details["writer"], details["writerProblem"]) == (
        "unreachable", NO_ANSWER)
    writer, _ = node(running, "writer")
    writer.forwarder.unreachable = NO_ANSWER  # a writer forwards nothing: always ready
    assert writer.readiness()[0]


async def test_lag_gauges_read_the_tail(running: Running) -> None:
    """The lag metrics are computed when scraped, from the tail's numbers."""
    n, metrics = node(running, "follower")
    assert lag_gauges(metrics) == (0.0, 0.0)
    n.tail.heard(7)
    seqs, _ = lag_gauges(metrics)
    assert seqs == 7.0


def settings_of(overrides: Mapping[str, object] | None = None,
                environ: Mapping[str, str] | None = None) -> ClusterSettings:
    return load_settings(overrides, environ=environ or {}).cluster


def test_cluster_defaults_load_without_overrides() -> None:
    """Loading with nothing layered on top gives the model's own defaults."""
    assert settings_of() == ClusterSettings()


def test_cluster_settings_read_from_overrides_and_environment() -> None:
    """Every key is read, converted, and layered like other sections."""
    c = settings_of({"cluster.enabled": "true", "cluster.forward_batch": "64",
                     "cluster.max_wait_seconds": "0", "cluster.forward_linger": "0"},
                    {"SCOREBOARD_CLUSTER__ADVERTISE_HOST": "10.0.0.5",
                     "SCOREBOARD_CLUSTER__INTERNAL_PORT": "7000"})
    assert c.enabled and c.forward_batch == 64 and c.max_wait_seconds == 0.0
    assert c.forward_linger == 0.0
    assert (c.advertise_host, c.internal_port) == ("10.0.0.5", 7000)


@pytest.mark.parametrize(("key", "value"), [
    ("internal_host", ""),
    ("internal_port", "65536"),
    ("poll_interval", "0"),
    ("max_lag_seqs", "-1"),
    ("forward_timeout", "0.05"),
    ("forward_batch", "0"),
    ("forward_linger", "0.2"),
    ("max_wait_seconds", "61"),
    ("enabled", "maybe"),
])
def test_a_bad_cluster_value_names_its_key(key: str, value: str) -> None:
    """Out of range or the wrong type: the error names `cluster.<key>`."""
    with pytest.raises(SettingsError, match=rf"cluster\.{key}"):
        settings_of({f"cluster.{key}": value})
