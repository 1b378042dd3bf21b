"""Pipelined commits give exactly what one group at a time gives.

The same stream of units (trusted batches) is run through a writer deciding one group
at a time (`pipeline_depth=1`) and through pipelined ones, against a memory log that
fails chosen commits; the log's records, every reply and the engine's final state must
be the same. All units are queued before the writer starts, so both take the same
groups, and a group put back after a failure is taken again as one at a time would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scoreboard.core.commands import Command, SetFrozen, SubmitAction
from scoreboard.core.engine import Engine
from scoreboard.core.records import CommitBatch, LogRecord
from scoreboard.core.recovery import Restore
from scoreboard.core.rules import RuleSet
from scoreboard.storage.base import StoreUnavailable
from scoreboard.storage.memory import MemoryLog
from scoreboard.writer.actor import Writer

RULES = RuleSet.from_config({
    "COMPLETE_LEVEL": {"points": 10},
    "BONUS": {"points": 5, "limit": 2, "window": "1h"},
})
NOW = 1_700_000_000.0


class FlakyLog(MemoryLog):
    """A memory log whose commits take a few turns of the event loop (so the writer
    decides ahead), failing the appends numbered in `fail`: with nothing written, or
    (`landed`) after writing, like a connection lost during COMMIT."""

    def __init__(self, fail: set[int], landed: set[int]) -> None:
        super().__init__()
        self.fail, self.landed = fail, landed
        self.calls = 0
        self.writer: Writer | None = None
        self.most_in_flight = 0

    async def append(self, batch: CommitBatch) -> None:
        self.calls += 1
        call = self.calls
        for _ in range(3):  # the commit is under way: the writer may decide meanwhile
            await asyncio.sleep(0)
        if self.writer is not None:
            self.most_in_flight = max(self.most_in_flight, len(self.writer._groups))
        if call in self.fail:
            raise StoreUnavailable(f"injected failure of commit {call}; nothing was written")
        await super().append(batch)
        if call in self.landed:
            raise StoreUnavailable(f"injected failure after commit {call}")


def _answer(a: object) -> Any:
    if isinstance(a, BaseException):
        return (type(a).__name__, str(a))
    return a


async def _run(units: Sequence[Sequence[Command]], depth: int, fail: set[int],
               landed: set[int], max_batch: int) -> tuple[Any, ...]:
    store = FlakyLog(fail, landed)
    engine = Engine(RULES, max_keys=4)  # keys fall out of memory: the log's index decides
    writer = Writer(engine, store, max_batch=max_batch, retry_seconds=0.0,
                    pipeline_depth=depth, clock=lambda: NOW)
    store.writer = writer
    seen: list[LogRecord] = []
    writer.listeners.append(seen.extend)
    await store.open()
    await store.load(0.0, into=Restore(engine))
    # Every unit is queued (before its first await) before the writer takes any.
    callers = [asyncio.ensure_future(writer.submit_many(u)) for u in units]
    task = asyncio.ensure_future(writer.run())
    answers = await asyncio.wait_for(asyncio.gather(*callers), 10)
    writer.stop()
    await asyncio.wait_for(task, 10)
    records = [r async for chunk in store.scan() for r in chunk]
    return (
        [[_answer(a) for a in unit] for unit in answers],
        records, seen, engine.state_digest(), engine.memory_digest(), store.most_in_flight,
    )


users = st.sampled_from(["ann", "bob", "cy", "dee"])
actions = st.builds(
    SubmitAction, users, st.none(), st.just("global"),
    st.sampled_from(["COMPLETE_LEVEL", "COMPLETE_LEVEL", "BONUS"]),
    st.sampled_from([f"c{i}" for i in range(8)]),  # few keys: many repeats
)
freezes = st.builds(SetFrozen, users, st.just("mod"), st.booleans(), st.just("r"))
commands = st.one_of(actions, actions, actions, freezes)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    units=st.lists(st.lists(commands, min_size=1, max_size=5), min_size=1, max_size=12),
    fail=st.sets(st.integers(1, 12), max_size=3),
    landed=st.sets(st.integers(1, 12), max_size=2),
    max_batch=st.integers(1, 6),
    depth=st.integers(2, 4),
)
def test_a_pipelined_run_equals_a_sequential_one(
    units: list[list[Command]], fail: set[int], landed: set[int], max_batch: int, depth: int,
) -> None:
    landed -= fail
    sequential = asyncio.run(_run(units, 1, fail, landed, max_batch))
    pipelined = asyncio.run(_run(units, depth, fail, landed, max_batch))
    assert pipelined[:4] == sequential[:4]  # replies, records, listeners, state
    # What decisions remember matches too, except which keys the bounded memory holds:
    # a copy decided a little earlier may find its key still there instead of asking
    # the log; the answer is the same (checked above).
    keys = [dict(run[4].pop("IdempotencyKeys")) for run in (sequential, pipelined)]
    assert pipelined[4] == sequential[4]
    assert all(keys[0][k] == keys[1][k] for k in keys[0].keys() & keys[1].keys())
    assert sequential[5] <= 1  # one group at a time really is one at a time


def test_groups_are_decided_while_an_earlier_one_commits() -> None:
    units: list[list[Command]] = [
        [SubmitAction(f"u{i}", None, "global", "COMPLETE_LEVEL", "c")] for i in range(6)
    ]
    replies, records, _, _, _, most = asyncio.run(_run(units, 3, set(), set(), 1))
    assert most == 3
    assert [r.seq for r in records] == list(range(1, 7))
    assert all(not isinstance(u[0], tuple) for u in replies)


def test_a_failed_commit_sends_the_groups_decided_on_it_back_to_be_decided_again() -> None:
    # ann's second action counts on her first (pending when it was decided); the first
    # fails, so the second is decided again on what is committed: a score of 10, not 20.
    units: list[list[Command]] = [
        [SubmitAction("ann", None, "global", "COMPLETE_LEVEL", "a")],
        [SubmitAction("ann", None, "global", "COMPLETE_LEVEL", "b")],
        [SubmitAction("ann", None, "global", "COMPLETE_LEVEL", "a")],
    ]
    replies, records, seen, digest, _, most = asyncio.run(_run(units, 3, {1}, set(), 1))
    assert most >= 2
    assert replies[0][0][0] == "StoreDown"
    assert [(r.seq, r.new_score) for r in records] == [(1, 10), (2, 20)]  # type: ignore[attr-defined]
    assert replies[1][0].new_score == 10 and not replies[1][0].replayed
    assert replies[2][0].seq == 2 and not replies[2][0].replayed  # "a" again, now new
    assert seen == records and digest["last_seq"] == 2
