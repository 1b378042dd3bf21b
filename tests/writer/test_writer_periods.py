"""Periods in the writer (SPEC §11): its own clock closes them at the start of a group, or
on its own when nothing is asked; an admin's reset is a command like any other."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from scoreboard.core.boards import BoardDef
from scoreboard.core.commands import ActionResult, ResetBoard, SubmitAction, UserResult
from scoreboard.core.engine import Engine
from scoreboard.core.records import ActionRecord, LogRecord, PeriodClosedRecord
from scoreboard.core.rules import RuleSet
from scoreboard.storage.memory import MemoryLog
from scoreboard.writer.actor import Writer

RULES = RuleSet.from_config({"WIN": {"points": 10}})
DAY1 = datetime(2026, 12, 4, 12, tzinfo=UTC).timestamp()


def win(user: str, cid: str, board: str = "daily") -> SubmitAction:
    return SubmitAction(user, None, board, "WIN", cid)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Started:
    def __init__(self, boards: Sequence[BoardDef], clock: Clock | None = None) -> None:
        self.store = MemoryLog()
        self.engine = Engine(RULES, boards)
        self.writer = Writer(self.engine, self.store, **({} if clock is None else {"clock": clock}))
        self.seen: list[LogRecord] = []
        self.closed = asyncio.Event()
        self.writer.listeners.append(self._told)

    def _told(self, records: Sequence[LogRecord]) -> None:
        self.seen.extend(records)
        if any(isinstance(r, PeriodClosedRecord) for r in records):
            self.closed.set()

    async def __aenter__(self) -> Started:
        await self.store.open()
        self.task = asyncio.create_task(self.writer.run())
        return self

    async def __aexit__(self, *_: object) -> None:
        self.writer.stop()
        await asyncio.wait_for(self.task, 5)

    async def stored(self) -> list[LogRecord]:
        return [r async for part in self.store.scan() for r in part]


async def test_a_group_after_the_end_closes_the_period_first() -> None:
    clock = Clock(DAY1)
    async with Started([BoardDef("daily", reset="daily")], clock) as s:
        await s.writer.submit(win("amy", "1"))
        clock.now = DAY1 + 86_400  # the next day
        result = await s.writer.submit(win("bob", "1"))
        assert isinstance(result, ActionResult) and result.rank == 1
        closed, action = (await s.stored())[1:]
        assert isinstance(closed, PeriodClosedRecord) and isinstance(action, ActionRecord)
        assert (closed.period, closed.next_period) == ("2026-12-04", "2026-12-05")
        assert closed.seq < action.seq  # bob scores in the new period only
        assert s.engine.boards["daily"].top(5) == [("bob", 10)]
        [(record, ranking)] = s.engine.take_closed()
        assert record == closed and ranking.top(5) == [("amy", 10)]


async def test_a_period_closes_on_time_without_any_request() -> None:
    ends = time.time() + 0.3
    async with Started([BoardDef("cup", end=ends)]) as s:
        await s.writer.submit(win("amy", "1", "cup"))
        await asyncio.wait_for(s.closed.wait(), 5)  # nothing else was submitted
        [record] = [r for r in s.seen if isinstance(r, PeriodClosedRecord)]
        assert (record.period, record.next_period, record.at >= ends) == ("season", None, True)
        assert "cup" in s.engine.ended and s.engine.next_rollover() is None
        assert await s.stored() == s.seen


async def test_an_admin_reset_is_committed_and_answered_like_any_command() -> None:
    clock = Clock(DAY1)
    async with Started([BoardDef("daily", reset="daily")], clock) as s:
        await s.writer.submit(win("amy", "1"))
        clock.now = DAY1 + 60
        result = await s.writer.submit(ResetBoard("", actor="admin-1", board="daily",
                                                  reason="a broken level"))
        assert isinstance(result, UserResult) and result.seq == 2
        [record] = [r for r in await s.stored() if isinstance(r, PeriodClosedRecord)]
        assert (record.actor, record.reason, record.next_period) == (
            "admin-1", "a broken level", "2026-12-04.2")
        assert len(s.engine.boards["daily"]) == 0
        assert s.engine.periods["daily"] is not None
        assert s.engine.periods["daily"].id == "2026-12-04.2"
