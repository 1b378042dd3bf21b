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
    decides ahead), failing once each commit of a batch that starts at a seq in
    `fail` (nothing written) or in `landed` (written, then the error: a connection
    lost during COMMIT)."""

    def __init__(self, fail: set[int], landed: set[int]) -> None:
        super().__init__()
        self.fail, self.landed = set(fail), set(landed)
        self.writer: Writer | None = None
        self.most_in_flight = 0

    async def append(self, batch: CommitBatch) -> None:
        first = batch.records[0].seq
        for _ in range(3):  # the commit is under way: the writer may decide meanwhile
            await asyncio.sleep(0)
        if self.writer is not None:
            self.most_in_flight = max(self.most_in_flight, len(self.writer._groups))
        if first in self.fail:
            self.fail.discard(first)
            raise StoreUnavailable(f"injected failure at seq {first}; nothing was written")
        await super().append(batch)
        if first in self.landed:
            self.landed.discard(first)
            raise StoreUnavailable(f"injected failure after commit at seq {first}")


def _answer(a: object) -> Any:
    if isinstance(a, BaseException):
        return (type(a).__name__, str(a))
    return a


async def _run(units: Sequence[Sequence[Command]], depth: int, fail: set[int],
               landed: set[int], max_batch: int, max_keys: int = 200_000) -> tuple[Any, ...]:
    store = FlakyLog(fail, landed)
    # Memory keeps every key: whether a key it forgot is a replay or (say) a frozen
    # user's refusal depends on when the forgetting happened, in either mode.
    engine = Engine(RULES, max_keys=max_keys)
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


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    units=st.lists(st.lists(commands, min_size=1, max_size=4), min_size=1, max_size=14),
    fail=st.sets(st.integers(1, 30), max_size=4),
    landed=st.sets(st.integers(1, 30), max_size=3),
    max_batch=st.integers(1, 5),
    depth=st.integers(2, 4),
)
def test_a_pipelined_run_equals_a_sequential_one(
    units: list[list[Command]], fail: set[int], landed: set[int], max_batch: int, depth: int,
) -> None:
    landed -= fail
    sequential = asyncio.run(_run(units, 1, fail, landed, max_batch))
    pipelined = asyncio.run(_run(units, depth, fail, landed, max_batch))
    assert pipelined[:5] == sequential[:5]  # replies, records, listeners, state, memory
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


def test_a_key_memory_forgot_is_learned_and_the_groups_after_it_decided_again() -> None:
    def act(user: str, cid: str) -> SubmitAction:
        return SubmitAction(user, None, "global", "COMPLETE_LEVEL", cid)

    units: list[list[Command]] = [[act("ann", f"c{i}")] for i in range(4)]
    units += [[act("ann", "c0"), act("bob", "x")], [act("bob", "y")], [act("bob", "x")]]
    replies, records, seen, digest, _, most = asyncio.run(
        _run(units, 3, set(), set(), 1, max_keys=2))
    assert most == 3
    old, x = replies[4]
    assert old.replayed and old.seq == 1 and not x.replayed and x.seq == 5
    assert replies[5][0].seq == 6 and replies[5][0].new_score == 20  # decided again on x
    assert replies[6][0].replayed and replies[6][0].seq == 5
    assert [r.seq for r in records] == list(range(1, 7)) and seen == records
    assert digest["boards"]["global"] == [("ann", 40, 4), ("bob", 20, 6)]


class OrderLog(MemoryLog):
    """A memory log noting when each append begins (by its first seq), into the same
    list the writer's listener notes each answered group in."""

    def __init__(self, events: list[tuple[str, int]]) -> None:
        super().__init__()
        self.events = events

    async def append(self, batch: CommitBatch) -> None:
        self.events.append(("append", batch.records[0].seq))
        for _ in range(3):  # the commit is under way: the writer decides meanwhile
            await asyncio.sleep(0)
        await super().append(batch)


async def _order(depth: int) -> list[tuple[str, int]]:
    events: list[tuple[str, int]] = []
    store = OrderLog(events)
    engine = Engine(RULES)
    writer = Writer(engine, store, max_batch=1, pipeline_depth=depth, clock=lambda: NOW)
    writer.listeners.append(lambda records: events.append(("told", records[0].seq)))
    await store.open()
    units = [[SubmitAction(f"u{i}", None, "global", "COMPLETE_LEVEL", "c")] for i in range(3)]
    callers = [asyncio.ensure_future(writer.submit_many(u)) for u in units]
    task = asyncio.ensure_future(writer.run())
    await asyncio.wait_for(asyncio.gather(*callers), 10)
    writer.stop()
    await asyncio.wait_for(task, 10)
    return events


def test_the_next_commit_is_under_way_before_a_group_is_answered() -> None:
    # The database works on the next group while this process applies and answers the
    # one just committed, rather than only once that is done.
    assert asyncio.run(_order(2)) == [
        ("append", 1), ("append", 2), ("told", 1), ("append", 3), ("told", 2), ("told", 3),
    ]
    assert asyncio.run(_order(1)) == [
        ("append", 1), ("told", 1), ("append", 2), ("told", 2), ("append", 3), ("told", 3),
    ]
