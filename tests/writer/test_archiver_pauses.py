"""Between its slices of work on the event loop (building a closed period's rows,
freeing its ranking) the archiver lets the loop wait on its selector, the interpreter
lock let go, rather than yield and take the lock straight back: the thread of the
log's commits waits for that lock after every statement (`archiver.PAUSE`).

Each test runs on a loop of its own whose selector records the timeout of every wait;
nothing else is scheduled on it, so a wait longer than nothing is the archiver's pause."""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any

import pytest

from scoreboard.core.engine import Engine
from scoreboard.core.ranking import Ranking
from scoreboard.storage.memory import MemoryLog
from scoreboard.writer import archiver
from scoreboard.writer.archiver import Archiver, release
from tests.storage.test_boards_contract import BOARDS, RULES

USERS = 3_000  # several steps of rows (`archiver._STEP`), several parts to free


class Recording(selectors.DefaultSelector):
    def __init__(self) -> None:
        super().__init__()
        self.timeouts: list[float | None] = []

    def select(self, timeout: float | None = None) -> Any:
        self.timeouts.append(timeout)
        return super().select(timeout)


def waits(work: Coroutine[Any, Any, object]) -> list[float | None]:
    """Run `work` alone on a fresh loop; the timeouts its selector was given."""
    selector = Recording()
    loop = asyncio.SelectorEventLoop(selector)
    try:
        loop.run_until_complete(work)
    finally:
        loop.close()
    return selector.timeouts


def paused(timeouts: list[float | None]) -> bool:
    """A pause is a real wait and then a look that runs its timer: about half the
    waits are real (a third leaves room for a timer due already when a busy machine
    reaches the selector late). A bare yield never waits at all."""
    return sum(t is not None and t > 0 for t in timeouts) * 3 >= len(timeouts) > 0


def ranking() -> Ranking:
    r = Ranking("daily", ascending=False, competition=True)
    for i in range(USERS):
        r.set(f"u{i:05d}", i % 97, i + 1)
    return r


@pytest.fixture(autouse=True)
def every_step_a_slice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(archiver, "SLICE", 0.0)  # a pause after every step


def test_building_rows_pauses_on_the_selector() -> None:
    r = ranking()
    built = Archiver(Engine(RULES, BOARDS), MemoryLog(), lambda: Engine(RULES, BOARDS),
                     chunk=USERS)

    async def build() -> int:
        return len(await built._rows(r, 0))

    timeouts = waits(build())
    assert len(timeouts) >= USERS // archiver._STEP - 1
    assert paused(timeouts), timeouts


def test_freeing_a_ranking_pauses_on_the_selector() -> None:
    r = ranking()
    timeouts = waits(release(r))
    assert len(timeouts) > 1  # freed in several parts
    assert paused(timeouts), timeouts
    assert len(r) == 0
