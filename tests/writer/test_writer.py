"""The writer actor against the memory log: batching, failures, duplicates, shutdown."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import AsyncIterator, Sequence

import pytest

from scoreboard.core import errors
from scoreboard.core.commands import ActionResult, SubmitAction
from scoreboard.core.engine import Engine
from scoreboard.core.records import CommitBatch, LogRecord
from scoreboard.core.recovery import Restore
from scoreboard.core.rules import RuleSet
from scoreboard.storage.base import StoreUnavailable
from scoreboard.storage.memory import MemoryLog
from scoreboard.writer.actor import Overloaded, ShuttingDown, StoreDown, Writer, WriterStopped

RULES = RuleSet.from_config({"COMPLETE_LEVEL": {"points": 10}})


def act(user: str, cid: str, action: str = "COMPLETE_LEVEL") -> SubmitAction:
    return SubmitAction(user, user.title(), "global", action, cid)


class Running:
    def __init__(self, store: MemoryLog, **kw: float) -> None:
        self.store = store
        self.engine = Engine(RULES, max_keys=kw.pop("max_keys", 200_000))  # type: ignore[arg-type]
        self.writer = Writer(self.engine, store, **kw)  # type: ignore[arg-type]
        self.seen: list[LogRecord] = []
        self.writer.listeners.append(self._seen)
        self.task: asyncio.Task[None] | None = None

    def _seen(self, records: Sequence[LogRecord]) -> None:
        self.seen.extend(records)

    async def start(self) -> None:
        await self.store.open()
        await self.store.load(0.0, into=Restore(self.engine))
        self.task = asyncio.create_task(self.writer.run())

    async def stop(self) -> None:
        self.writer.stop()
        assert self.task is not None
        await asyncio.wait_for(self.task, 5)


@pytest.fixture
async def running() -> AsyncIterator[Running]:
    r = Running(MemoryLog(), retry_seconds=0.2)
    await r.start()
    yield r
    if r.task is not None and not r.task.done():
        await r.stop()


async def test_group_commit_batches_what_waits(running: Running) -> None:
    results = await asyncio.gather(*(running.writer.submit(act(f"u{i}", "c")) for i in range(50)))
    assert sorted(r.seq for r in results) == list(range(1, 51))  # type: ignore[union-attr]
    assert len(await _all(running.store)) == 50
    assert len(running.engine.boards["global"]) == 50


async def test_failed_commit_answers_503_and_shows_nothing(running: Running) -> None:
    running.store.fail_next(100)  # longer than retry_seconds allows
    with pytest.raises(StoreDown) as info:
        await running.writer.submit(act("alice", "c1"))
    assert info.value.code == "STORE_UNAVAILABLE" and info.value.retry_after >= 1
    assert running.engine.boards["global"].score("alice") is None
    assert running.seen == [] and running.engine.last_seq == 0
    running.store.fail_next(0)
    result = await running.writer.submit(act("alice", "c1"))
    assert isinstance(result, ActionResult) and result.seq == 1 and not result.replayed


async def test_a_transient_failure_is_retried_while_the_request_waits(running: Running) -> None:
    running.store.fail_next(2)
    result = await running.writer.submit(act("alice", "c1"))
    assert isinstance(result, ActionResult) and result.new_score == 10
    assert [r.seq for r in await _all(running.store)] == [1]


async def test_commit_lost_after_it_landed_is_not_applied_twice(running: Running) -> None:
    running.store.fail_next(1, after_commit=True)
    result = await running.writer.submit(act("alice", "c1"))
    assert isinstance(result, ActionResult) and result.seq == 1
    assert [r.seq for r in await _all(running.store)] == [1]
    assert running.engine.boards["global"].score("alice") == 10
    again = await running.writer.submit(act("alice", "c2"))
    assert isinstance(again, ActionResult) and again.seq == 2 and again.new_score == 20


async def test_unknown_outcome_then_resync_applies_what_landed() -> None:
    store = MemoryLog()
    r = Running(store, retry_seconds=0.0)  # no retries: the caller hears 503 at once
    await r.start()
    store.fail_next(1, after_commit=True)
    with pytest.raises(StoreDown):
        await r.writer.submit(act("alice", "c1"))
    # The record is in the log although the caller got 503; the next batch learns it.
    result = await r.writer.submit(act("bob", "c1"))
    assert isinstance(result, ActionResult) and result.seq == 2
    assert r.engine.boards["global"].score("alice") == 10
    replay = await r.writer.submit(act("alice", "c1"))
    assert isinstance(replay, ActionResult) and replay.replayed and replay.seq == 1
    assert [x.seq for x in r.seen] == [1, 2]
    await r.stop()


async def test_full_queue_is_overloaded() -> None:
    store = MemoryLog()
    r = Running(store, queue_size=2, max_batch=1)
    await r.start()
    tasks = [asyncio.create_task(r.writer.submit(act(f"u{i}", "c"))) for i in range(10)]
    done = await asyncio.gather(*tasks, return_exceptions=True)
    overloaded = [d for d in done if isinstance(d, Overloaded)]
    accepted = [d for d in done if isinstance(d, ActionResult)]
    assert overloaded and accepted and len(overloaded) + len(accepted) == 10
    assert overloaded[0].retry_after >= 1
    assert len(await _all(store)) == len(accepted)
    await r.stop()


async def test_concurrent_copies_wait_for_the_first(running: Running) -> None:
    results = await asyncio.gather(*(running.writer.submit(act("alice", "same"))
                                     for _ in range(30)))
    assert len({(r.seq, r.new_score) for r in results}) == 1  # type: ignore[union-attr]
    assert sum(not r.replayed for r in results) == 1  # type: ignore[union-attr]
    with pytest.raises(errors.IdempotencyConflict):
        await asyncio.gather(running.writer.submit(act("bob", "k")),
                             running.writer.submit(SubmitAction("bob", "Bob", "global",
                                                                "COMPLETE_LEVEL", "k",
                                                                metadata={"x": 1})))


async def test_a_caller_gone_once_answered_leaves_nothing_unretrieved(
    running: Running,
) -> None:
    """A caller cancelled between its refusal being set and its task resuming (a client
    that hangs up just then): the refusal is still taken, nothing is reported as an
    exception never retrieved, and its key is no longer in flight."""
    loop = asyncio.get_running_loop()
    reported: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    refused = asyncio.create_task(running.writer.submit(act("al", "k1", "NO_SUCH_ACTION")))
    # Listeners run right after the group's callers are answered, in the same step.
    running.writer.listeners.append(lambda _records: refused.cancel())
    accepted = await running.writer.submit(act("bo", "k2"))
    assert isinstance(accepted, ActionResult)
    with pytest.raises(asyncio.CancelledError):
        await refused
    running.writer.listeners.pop()
    gc.collect()
    loop.set_exception_handler(None)
    assert reported == []
    again = await asyncio.wait_for(running.writer.submit(act("al", "k1")), 5)
    assert isinstance(again, ActionResult) and not again.replayed


async def test_keys_older_than_memory_fall_back_to_the_log() -> None:
    store = MemoryLog()
    r = Running(store, max_keys=2)
    await r.start()
    first = await r.writer.submit(act("alice", "old"))
    for i in range(5):
        await r.writer.submit(act("alice", f"new{i}"))
    assert ("alice", "old") not in r.engine.keys  # forgotten in memory …
    again = await r.writer.submit(act("alice", "old"))  # … the log's unique key decides
    assert isinstance(again, ActionResult) and again.replayed and again.seq == first.seq  # type: ignore[union-attr]
    assert r.engine.boards["global"].score("alice") == 60
    await r.stop()


async def test_stop_answers_everything_queued_then_refuses(running: Running) -> None:
    tasks = [asyncio.create_task(running.writer.submit(act(f"u{i}", "c"))) for i in range(20)]
    await asyncio.sleep(0)  # let them enqueue
    await running.stop()
    results = await asyncio.gather(*tasks)
    assert len(results) == 20 and all(isinstance(x, ActionResult) for x in results)
    with pytest.raises(ShuttingDown):
        await running.writer.submit(act("late", "c"))


async def _all(store: MemoryLog) -> list[LogRecord]:
    return [r async for chunk in store.scan() for r in chunk]


async def test_a_raising_listener_does_not_fail_the_write(running: Running) -> None:
    failures: list[BaseException] = []

    def broken(records: Sequence[LogRecord]) -> None:
        raise RuntimeError("listener bug")

    running.writer.listeners.insert(0, broken)
    running.writer.listener_error_observers.append(failures.append)
    result = await running.writer.submit(act("amy", "c1"))
    assert isinstance(result, ActionResult) and result.new_score == 10
    assert [type(f) for f in failures] == [RuntimeError]
    assert [r.seq for r in running.seen] == [1]  # the listeners after it still ran
    assert running.engine.boards["global"].score("amy") == 10
    again = await running.writer.submit(act("amy", "c2"))  # the writer goes on
    assert isinstance(again, ActionResult) and again.new_score == 20


async def test_a_writer_that_dies_answers_everyone_waiting(running: Running) -> None:
    assert running.task is not None
    waiting = asyncio.create_task(running.writer.submit(act("bo", "c1")))
    await asyncio.sleep(0)  # one step: the command is queued, the writer not yet run
    running.task.cancel()
    with pytest.raises(WriterStopped):
        await asyncio.wait_for(waiting, 5)
    with pytest.raises(WriterStopped):  # and whoever comes later
        await running.writer.submit(act("bo", "c2"))
    running.task = None


class DownLog(MemoryLog):
    """The memory log during an outage: every call that needs the database fails."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.failed = asyncio.Event()

    async def append(self, batch: CommitBatch) -> None:
        if self.down:
            self.failed.set()
            raise StoreUnavailable("outage")
        await super().append(batch)

    async def last_seq(self) -> int:
        if self.down:
            raise StoreUnavailable("outage")
        return await super().last_seq()


async def test_a_request_queued_behind_a_retrying_batch_waits_retry_seconds_not_twice() -> None:
    retry = 1.0
    store = DownLog()
    r = Running(store, retry_seconds=retry)
    await r.start()
    try:
        store.down = True
        first = asyncio.ensure_future(r.writer.submit(act("alice", "c1")))
        await asyncio.wait_for(store.failed.wait(), 5)  # its batch is retrying now
        queued = time.monotonic()
        with pytest.raises(StoreDown):
            await r.writer.submit(act("bob", "c1"))
        waited = time.monotonic() - queued
        with pytest.raises(StoreDown):
            await first
        # Its own retry_seconds (and the attempt under way), not the first batch's
        # remainder plus a full retry_seconds more (~2 s before the fix).
        assert waited < retry + 0.4, waited
        store.down = False
        result = await r.writer.submit(act("bob", "c1"))
        assert isinstance(result, ActionResult) and result.seq == 1
    finally:
        await r.stop()
