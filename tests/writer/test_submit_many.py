"""Writer.submit_many: a unit of commands decided in order and committed together."""

from __future__ import annotations

import asyncio

import pytest

from scoreboard.core import errors
from scoreboard.core.commands import ActionResult, SubmitAction
from scoreboard.storage.memory import MemoryLog
from scoreboard.writer.actor import Overloaded, StoreDown
from tests.writer.test_writer import Running, _all, act


@pytest.fixture
async def batches() -> list[int]:
    return []


async def started(batches: list[int], **kw: float) -> Running:
    r = Running(MemoryLog(), **kw)
    r.writer.batch_observers.append(lambda n, _s: batches.append(n))
    await r.start()
    return r


async def test_a_unit_is_one_transaction_even_past_max_batch(batches: list[int]) -> None:
    r = await started(batches, max_batch=8)
    out = await r.writer.submit_many([act(f"u{i}", "c") for i in range(50)])
    assert [x.seq for x in out] == list(range(1, 51))  # type: ignore[union-attr]
    assert batches == [50]  # never split at max_batch
    await r.stop()


async def test_units_share_a_batch_with_single_commands(batches: list[int]) -> None:
    r = await started(batches, max_batch=1000)
    singles = [asyncio.create_task(r.writer.submit(act(f"s{i}", "c"))) for i in range(5)]
    unit = asyncio.create_task(r.writer.submit_many([act(f"b{i}", "c") for i in range(5)]))
    await asyncio.gather(*singles, unit)
    assert sum(batches) == 10 and len(batches) <= 2  # group commit still groups
    assert [x.seq for x in unit.result()] == sorted(  # type: ignore[union-attr]
        x.seq for x in unit.result())  # type: ignore[union-attr]
    await r.stop()


async def test_each_command_gets_its_own_answer_in_order(batches: list[int]) -> None:
    r = await started(batches)
    other = SubmitAction("amy", None, "global", "COMPLETE_LEVEL", "k", metadata={"x": 1})
    out = await r.writer.submit_many([
        act("amy", "k"), act("bob", "k", "NOPE"), act("amy", "k"), other, act("cy", "k"),
    ])
    first, unknown, replay, conflict, last = out
    assert isinstance(first, ActionResult) and not first.replayed and first.seq == 1
    assert isinstance(unknown, errors.UnknownAction)
    assert isinstance(replay, ActionResult) and replay.replayed and replay.seq == 1
    assert isinstance(conflict, errors.IdempotencyConflict)
    assert isinstance(last, ActionResult) and last.seq == 2
    assert [x.seq for x in await _all(r.store)] == [1, 2]
    assert r.engine.boards["global"].score("amy") == 10  # once, not twice
    await r.stop()


async def test_copies_in_flight_elsewhere_are_replays(batches: list[int]) -> None:
    r = await started(batches)
    single = asyncio.create_task(r.writer.submit(act("amy", "k")))
    unit = asyncio.create_task(r.writer.submit_many([act("amy", "k")]))
    again = asyncio.create_task(r.writer.submit(act("amy", "k")))
    first, (copy,), later = await asyncio.gather(single, unit, again)
    assert isinstance(first, ActionResult) and not first.replayed
    assert isinstance(copy, ActionResult) and copy.replayed and copy.seq == first.seq
    assert isinstance(later, ActionResult) and later.replayed and later.seq == first.seq
    assert len(await _all(r.store)) == 1
    await r.stop()


async def test_a_unit_counts_against_the_queue_by_its_size(batches: list[int]) -> None:
    r = await started(batches, queue_size=10)
    with pytest.raises(Overloaded):
        await r.writer.submit_many([act(f"u{i}", "c") for i in range(11)])
    assert r.writer.queue_depth == 0 and await _all(r.store) == []
    out = await r.writer.submit_many([act(f"u{i}", "c") for i in range(10)])
    assert len(out) == 10 and all(isinstance(x, ActionResult) for x in out)
    await r.stop()


async def test_a_failed_commit_fails_the_whole_unit(batches: list[int]) -> None:
    r = await started(batches, retry_seconds=0.0)
    r.store.fail_next(1)
    out = await r.writer.submit_many([act("amy", "a"), act("amy", "b", "NOPE")])
    assert isinstance(out[0], StoreDown) and isinstance(out[1], errors.UnknownAction)
    assert await _all(r.store) == [] and r.engine.last_seq == 0
    await r.stop()


async def test_a_cancelled_caller_leaves_nothing_waiting(batches: list[int]) -> None:
    r = await started(batches)
    task = asyncio.create_task(r.writer.submit_many([act(f"u{i}", "c") for i in range(20)]))
    await asyncio.sleep(0)  # one step: the unit is queued, not yet decided
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    after = await r.writer.submit(act("late", "c"))  # the writer goes on
    assert isinstance(after, ActionResult) and r.writer.queue_depth == 0
    await r.stop()
