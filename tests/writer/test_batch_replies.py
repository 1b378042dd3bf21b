"""A batch's answers are made together (each board's ranks looked up at once): every
item's answer and reply bytes are what answering it alone, from the same committed
state, gives (`Engine.result` per record, encoded item by item)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import orjson
import pytest

from scoreboard.core.boards import BoardDef
from scoreboard.core.commands import ActionResult, AdjustScore, SetFrozen, SubmitAction
from scoreboard.core.engine import Engine
from scoreboard.core.errors import Refused
from scoreboard.core.recovery import Restore
from scoreboard.core.rules import RuleSet
from scoreboard.http.batch import item_error, results_body
from scoreboard.http.public import action_fields
from scoreboard.read.views import iso
from scoreboard.runtime.metrics import Metrics
from scoreboard.storage.memory import MemoryLog
from scoreboard.writer.actor import Result, Writer, WriterError

RULES = RuleSet.from_config({
    "COMPLETE_LEVEL": {"points": 10},
    "WIN_MATCH": {"points": 25},
    "LAP": {"points": 7},
    "BONUS": {"points": 5, "limit": 1, "window": "1h"},
})
BOARDS = [
    BoardDef("weekly", follows=("global",)),
    BoardDef("ties", ranks="competition"),
    BoardDef("laps", sort="asc", operator="best", ranks="competition"),
]


def one_by_one(outcomes: Sequence[Result | Refused]) -> bytes:
    """The reply as encoded item by item, each outcome on its own."""
    results: list[dict[str, Any]] = []
    for out in outcomes:
        if isinstance(out, WriterError):
            raise out
        if isinstance(out, Refused):
            results.append(item_error(out))
        else:
            assert isinstance(out, ActionResult)
            results.append(action_fields(out, iso(out.at)))
    return orjson.dumps({"results": results})


def act(user: str, cid: str, action: str = "COMPLETE_LEVEL", board: str = "global",
        name: str | None = None, **kw: Any) -> SubmitAction:
    return SubmitAction(user, name, board, action, cid, **kw)


@pytest.fixture
async def engine_and_writer() -> Any:
    engine = Engine(RULES, BOARDS)
    store = MemoryLog()
    await store.open()
    await store.load(0.0, into=Restore(engine))
    writer = Writer(engine, store, max_batch=64, pipeline_depth=2)
    # Each group's answers, checked when they are made against `result` per record.
    made: list[int] = []
    together = engine.results

    def checked(records: Sequence[Any], replayed: Sequence[bool], ranked: Sequence[bool]
                ) -> list[Any]:
        out = together(records, replayed, ranked)
        assert out == [engine.result(r, replayed=again, ranked=rank)
                       for r, again, rank in zip(records, replayed, ranked, strict=True)]
        made.append(len(out))
        return out

    engine.results = checked  # type: ignore[method-assign]
    task = asyncio.create_task(writer.run())
    yield engine, writer, made
    writer.stop()
    await asyncio.wait_for(task, 5)


async def test_a_mixed_batchs_answers_are_each_items_own(engine_and_writer: Any) -> None:
    engine, writer, made = engine_and_writer
    metrics = Metrics()
    first = [act(f"u{i}", "a", name=f"User {i}" if i % 2 else None) for i in range(40)]
    first += [act(f"u{i}", "t", "WIN_MATCH", "ties") for i in range(0, 40, 4)]
    first += [act(f"u{i}", "l", "LAP", "laps") for i in range(0, 40, 3)]
    out = await writer.submit_many(first)
    assert results_body(out, metrics) == one_by_one(out)
    await writer.submit(SetFrozen("u5", "root", True, "test"))
    await writer.submit(SetFrozen("u6", "root", True, "test"))
    await writer.submit(AdjustScore("u7", "root", "ties", 25, "test", "adj", create=True))
    mixed = [
        act("u1", "a", name="User 1"),  # a replay of an earlier batch
        act("u5", "b"),  # frozen
        act("u6", "a"),  # frozen, but a replay: answered with no rank
        act("u2", "a", "WIN_MATCH"),  # the same key, another payload
        act("u3", "x", "NO_SUCH_ACTION"),
        act("u3", "y", board="no-such-board"),
        act("u8", "bonus", "BONUS"), act("u8", "bonus2", "BONUS"),  # over the quota
        act("u9", "n", name="Nine"), act("u9", "n", name="Nine"),  # a copy in the batch
        act("new", "n"), act("u10", "m", metadata={"level": 3}),
        act("u11", "t", "WIN_MATCH", "ties"), act("u12", "t", "WIN_MATCH", "ties"),
        act("u4", "l2", "LAP", "laps"), act("u7", "w", "WIN_MATCH", "ties"),
        act("u13", "v", "LAP", "laps", value=3),  # a value for a rule of points
        act("u14", "w", board="weekly"),
    ]
    out = await writer.submit_many(mixed)
    assert results_body(out, metrics) == one_by_one(out)
    ranks = [x.rank if isinstance(x, ActionResult) else type(x).__name__ for x in out]
    assert ranks[1:3] == ["UserFrozen", None] and ranks[3] == "IdempotencyConflict"
    # Units decided on top of each other (the pipeline), replaying what is in flight,
    # next to single actions and a unit that ranks its results itself.
    units = [[act(f"p{k}{i}", "p") for i in range(30)] + [act("u1", "a", name="User 1")]
             for k in range(4)]
    units[2] += [act("p00", "p"), act("p10", "p")]
    tasks = [asyncio.create_task(writer.submit_many(u)) for u in units]
    tasks.append(asyncio.create_task(writer.submit_many(
        [act("q1", "q"), act("p00", "p")], ranked=False)))
    singles = [asyncio.create_task(writer.submit(act(f"s{i}", "s"))) for i in range(5)]
    await asyncio.gather(*tasks, *singles)
    for task in tasks:
        assert results_body(task.result(), metrics) == one_by_one(task.result())
    unranked = tasks[-1].result()
    assert all(isinstance(x, ActionResult) and x.rank is None for x in unranked)
    refused = sum(isinstance(x, Refused) for x in out)
    assert refused == 6  # every answer but these was made in a group's answers
    assert sum(made) == 40 + 10 + 14 + 3 + len(mixed) - refused + sum(map(len, units)) + 2 + 5
    assert engine.boards["global"].rank("u1") is not None
