"""A follower's tail without PostgreSQL: its lag arithmetic, and catching up from a log
a real writer appends to (the memory log; the tail reads it only through `scan`).

`Tail.run` and its LISTEN session need PostgreSQL's notifications and are covered by
`tests/integration/test_cluster.py`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from typing import cast

import pytest

from scoreboard.cluster.tail import Listener, Tail
from scoreboard.core.engine import Engine
from scoreboard.core.records import ActionRecord, CommitBatch, LogRecord
from scoreboard.storage.memory import MemoryLog
from scoreboard.storage.postgres.log import PostgresLog
from tests.writer.test_writer import RULES, Running, act


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Told:
    """A tail listener: the seqs of every call, one list per call."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []

    def __call__(self, records: Sequence[LogRecord]) -> None:
        self.calls.append([r.seq for r in records])


def tail_of(store: MemoryLog, engine: Engine, *listeners: Listener, chunk: int = 2_000,
            clock: Clock | None = None) -> Tail:
    return Tail(cast(PostgresLog, store), engine, listeners, poll_interval=60.0, chunk=chunk,
                clock=clock or Clock())


@pytest.fixture
async def writer() -> AsyncIterator[Running]:
    r = Running(MemoryLog())
    await r.start()
    yield r
    await r.stop()


async def test_lag_counts_seqs_and_seconds_from_the_first_unapplied_one() -> None:
    """Seconds behind start when a seq not applied is first heard of, not later."""
    clock = Clock()
    tail = tail_of(MemoryLog(), Engine(RULES), clock=clock)
    assert tail.lag() == (0, 0.0)
    tail.heard(0)  # nothing new: no clock started
    clock.now += 5
    assert tail.lag() == (0, 0.0)
    tail.heard(4)
    clock.now += 2
    tail.heard(6)  # still the same stretch behind
    clock.now += 1
    assert tail.lag() == (6, 3.0)
    tail.heard(2)  # an older notification never lowers what was heard
    assert tail.writer_seq == 6 and tail.lag() == (6, 3.0)


async def test_catch_up_applies_the_log_in_order_and_tells_listeners(
        writer: Running) -> None:
    """Every record after the follower's last seq, chunk by chunk, each chunk told to
    every listener; the follower ends in the writer's state and is no longer behind."""
    for i in range(5):
        await writer.writer.submit(act(f"u{i}", "c"))
    await writer.writer.submit(act("u0", "c2"))
    follower, told, also = Engine(RULES), Told(), Told()
    clock = Clock()
    tail = tail_of(writer.store, follower, told, also, chunk=4, clock=clock)
    tail.heard(6)
    clock.now += 1
    assert tail.lag() == (6, 1.0)
    assert await tail.catch_up() == 6
    assert told.calls == also.calls == [[1, 2, 3, 4], [5, 6]]
    assert follower.last_seq == 6 and tail.lag() == (0, 0.0)
    ranking, theirs = follower.boards["global"], writer.engine.boards["global"]
    assert [ranking.score(f"u{i}") for i in range(5)] == [20, 10, 10, 10, 10]
    assert [theirs.score(f"u{i}") for i in range(5)] == [20, 10, 10, 10, 10]
    assert await tail.catch_up() == 0 and told.calls[-1] == [5, 6]  # nothing new


async def test_still_behind_after_a_catch_up_restarts_the_seconds(writer: Running) -> None:
    """Heard of more than the log had to give: behind, but counted from the last
    progress rather than from the first notification."""
    await writer.writer.submit(act("amy", "c"))
    clock = Clock()
    tail = tail_of(writer.store, Engine(RULES), clock=clock)
    tail.heard(3)
    clock.now += 4
    assert tail.lag() == (3, 4.0)
    assert await tail.catch_up() == 1
    assert tail.lag() == (2, 0.0)
    clock.now += 1
    assert tail.lag() == (2, 1.0)
    await writer.writer.submit(act("bob", "c"))
    await writer.writer.submit(act("cy", "c"))
    assert await tail.catch_up() == 2 and tail.lag() == (0, 0.0)


async def test_a_failing_listener_does_not_stop_the_tail(
        writer: Running, caplog: pytest.LogCaptureFixture) -> None:
    """The state stands: a listener that raises is logged, the others are still told."""
    await writer.writer.submit(act("amy", "c"))

    def broken(records: Sequence[LogRecord]) -> None:
        raise RuntimeError("listener bug")

    told = Told()
    follower = Engine(RULES)
    tail = tail_of(writer.store, follower, broken, told)
    with caplog.at_level(logging.ERROR, logger="scoreboard.cluster"):
        assert await tail.catch_up() == 1
    assert told.calls == [[1]] and follower.last_seq == 1
    assert "a tail listener failed" in caplog.text


async def test_a_gap_in_the_log_stops_the_tail() -> None:
    """A seq missing between the follower's last and the next record is never skipped."""
    store = MemoryLog()
    await store.open()
    await store.append(CommitBatch((ActionRecord(
        seq=3, at=1.0, board="global", user_id="amy", display_name=None, delta=10,
        prev_score=0, new_score=10, client_action_id="c", action_type="COMPLETE_LEVEL"),), (), ()))
    follower, told = Engine(RULES), Told()
    tail = tail_of(store, follower, told)
    with pytest.raises(RuntimeError, match="skips from seq 0 to 3"):
        await tail.catch_up()
    assert follower.last_seq == 0 and told.calls == []
