"""Boards with time in every `ActionLog` backend (memory, SQLite, PostgreSQL): actions on
followed boards stored and replayed, and a restart after rollovers restores the current
periods without resurrecting closed ones. No mocks; no sleeps."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from scoreboard.core.boards import BoardDef
from scoreboard.core.commands import (
    Command,
    DefineBoard,
    RemoveStanding,
    ResetBoard,
    SubmitAction,
)
from scoreboard.core.engine import Engine
from scoreboard.core.image import take
from scoreboard.core.records import ScoreRow
from scoreboard.core.recovery import Restore
from scoreboard.core.rules import RuleSet
from scoreboard.storage import ActionLog
from scoreboard.storage.base import ArchivedPeriod, ArchiveRow
from scoreboard.storage.snapshots import encode, replay, restore_newest
from scoreboard.writer.actor import Writer
from tests.storage.test_contract import Backend, backend, batch, everything, load, rec, store

__all__ = ["backend", "store"]  # the contract's fixtures, over the three backends


async def test_an_action_on_followed_boards_is_stored_and_read_back(store: ActionLog) -> None:
    followed = rec(1, board="daily", also=(("weekly", 10, 20),
                                           ("season", 0, 10)))
    plain = rec(2)
    scores = [ScoreRow("daily", "u1", 10, 1), ScoreRow("weekly", "u1", 20, 1),
              ScoreRow("season", "u1", 10, 1), ScoreRow("main", "u1", 20, 2)]
    await store.append(batch(followed, plain, scores=scores))
    assert await everything(store) == [followed, plain]
    assert await store.find_actions([("u1", "c1")]) == [followed]
    assert await store.history("u1", before_seq=None, limit=5) == [plain, followed]
    assert (await load(store, 0.0)).recent == [followed, plain]


RULES = RuleSet.from_config({"WIN": {"points": 10}})
BOARDS = [BoardDef("daily", reset="daily"), BoardDef("weekly", reset="weekly", follows=("daily",)),
          BoardDef("best", operator="best", reset="daily")]
DAY1 = datetime(2026, 12, 4, 12, tzinfo=UTC).timestamp()


def win(user: str, cid: str, board: str = "daily") -> SubmitAction:
    return SubmitAction(user, user.title(), board, "WIN", cid)


async def run_writer(engine: Engine, store: ActionLog, steps: list[tuple[float, list[Command]]],
                     *, grouped: bool = False) -> None:
    """Each step's commands at its moment on the writer's clock: one by one, or
    (`grouped`) each step's as one unit (`submit_many`)."""
    now = [0.0]
    writer = Writer(engine, store, clock=lambda: now[0])
    task = asyncio.create_task(writer.run())
    try:
        for at, cmds in steps:
            now[0] = at
            if grouped:
                await writer.submit_many(cmds)
            else:
                for cmd in cmds:
                    await writer.submit(cmd)
    finally:
        writer.stop()
        await asyncio.wait_for(task, 5)


async def restarted(backend: Backend) -> Engine:
    """A fresh engine loaded from the backend's store, as a restart loads it."""
    again = backend.make()
    await again.open()
    try:
        engine = Engine(RULES, BOARDS)
        await again.load(0.0, into=Restore(engine))
    finally:
        await again.close()
    return engine


def restored_state(engine: Engine) -> dict[str, Any]:
    state = engine.state_digest()
    del state["closed"]  # the closed rankings went to the archiver, not to the state
    return state


async def test_a_restart_after_a_rollover_has_the_state_of_live(backend: Backend) -> None:
    store = backend.make()
    await store.open()
    live = Engine(RULES, BOARDS)
    await run_writer(live, store, [
        (DAY1, [win("amy", "1"), win("bob", "1"), win("amy", "2", "best")]),
        (DAY1 + 86_400, [win("bob", "2"), win("carl", "1")]),  # daily closes, weekly not
        (DAY1 + 86_460, [ResetBoard("", actor="admin", board="daily", reason="test")]),
        (DAY1 + 86_520, [win("amy", "3")]),
    ])
    await store.close()
    assert live.periods["daily"] is not None and live.periods["daily"].id == "2026-12-05.2"
    assert live.boards["daily"].top(5) == [("amy", 10)]
    assert live.boards["best"].top(5) == []  # its period closed; nobody scored since
    assert live.boards["weekly"].top(5) == [("bob", 20), ("amy", 20), ("carl", 10)]

    again = await restarted(backend)
    assert restored_state(again) == restored_state(live)
    assert again.next_rollover() == live.next_rollover()


async def test_groups_of_followed_actions_restart_to_the_state_of_live(backend: Backend
                                                                        ) -> None:
    """Whole groups through the writer (`submit_many`: users scoring several times in a
    group, on the followed board and on its follower, one of them renamed), applied at
    once (`Engine.apply_group`): a restart from the store has the live state."""
    store = backend.make()
    await store.open()
    live = Engine(RULES, BOARDS)
    steps: list[tuple[float, list[Command]]] = [(DAY1, [win("zoe", "0")])]  # periods open
    for n, at in enumerate((DAY1 + 60, DAY1 + 120, DAY1 + 86_400 + 60)):
        steps.append((at, [
            win("amy", f"{n}a"), win("bob", f"{n}a"), win("amy", f"{n}b"),
            win("bob", f"{n}b", "weekly"), win("carl", f"{n}a"),
            SubmitAction("carl", f"Carl {n}", "daily", "WIN", f"{n}b"),
        ]))
    try:
        await run_writer(live, store, steps, grouped=True)
    finally:
        await store.close()
    assert live.boards["weekly"].top(4) == [("amy", 60), ("bob", 60), ("carl", 60), ("zoe", 10)]
    assert live.boards["daily"].top(4) == [("amy", 20), ("carl", 20), ("bob", 10)]  # day 2
    assert restored_state(await restarted(backend)) == restored_state(live)


def closed(period: str, seq: int, total: int, *, complete: bool = True) -> ArchivedPeriod:
    return ArchivedPeriod("daily", period, DAY1, DAY1 + 86_400, total, seq, complete)


async def test_archives_are_written_idempotently_and_read_by_page_user_and_period(
        store: ActionLog) -> None:
    rows = [ArchiveRow(1, "amy", 30, 1), ArchiveRow(2, "bob", 20, 2), ArchiveRow(3, "cy", 20, 2),
            ArchiveRow(4, "dan", 5, 4)]
    first = closed("2026-12-04", 10, 4, complete=False)
    await store.write_archive(first, rows[:2])
    await store.write_archive(first, rows[:3])  # a chunk written again after a crash
    assert await store.periods("daily", None, 10) == []  # incomplete: not listed yet
    await store.write_archive(first._replace(complete=True), rows[3:])
    await store.write_archive(closed("2026-12-05", 20, 1), [ArchiveRow(1, "bob", 7, 1)])
    assert await store.archive_page("daily", "2026-12-04", 0, 2) == rows[:2]
    assert await store.archive_page("daily", "2026-12-04", 2, 10) == rows[2:]
    assert await store.archive_user("daily", "2026-12-04", "cy") == rows[2]
    assert await store.archive_user("daily", "2026-12-04", "zed") is None
    newest, older = await store.periods("daily", None, 10)
    assert (newest.period, newest.total_users, newest.top) == (
        "2026-12-05", 1, (ArchiveRow(1, "bob", 7, 1),))
    assert older == first._replace(complete=True, top=tuple(rows[:3]))
    assert await store.periods("daily", "2026-12-05", 10) == [older]
    assert await store.periods("daily", None, 1) == [newest]
    # A late chunk (a writer that lost its lock and does not know it yet) leaves a
    # complete period complete, with its count.
    await store.write_archive(first._replace(total_users=9), rows[:2])
    assert await store.archived_period("daily", "2026-12-04") == older._replace(top=())


def define(board: str, **keys: Any) -> DefineBoard:
    values: dict[str, Any] = {
        "title": "", "sort": "desc", "operator": "sum", "follows": "", "reset": "never",
        "timezone": "UTC", "start": None, "end": None, "ranks": "ordinal"}
    return DefineBoard("", actor="admin", board=board, reason="test", **{**values, **keys})


async def test_run_time_boards_and_removals_survive_a_restart_and_a_snapshot(
        backend: Backend) -> None:
    store = backend.make()
    await store.open()
    live = Engine(RULES, BOARDS)
    await run_writer(live, store, [
        (DAY1, [define("cup", reset="weekly", ranks="competition", sort="asc"),
                win("amy", "1", "cup"), win("bob", "1", "cup"), win("bob", "2", "cup"),
                win("carl", "1", "cup")]),
        (DAY1 + 60, [RemoveStanding("bob", actor="admin", board="cup", reason="cheat"),
                     RemoveStanding("carl", actor="admin", board="cup", reason="cheat")]),
    ])
    await store.save_snapshot(encode(take(live), DAY1), keep=2)  # an image with both
    await run_writer(live, store, [
        (DAY1 + 120, [win("carl", "2", "cup"), define("late", reset="daily"),
                      win("dan", "1", "late"),
                      RemoveStanding("amy", actor="admin", board="cup", reason="cheat")]),
    ])
    await store.close()
    assert live.boards["cup"].top(5) == [("carl", 10)]  # amy and bob off, carl again
    assert live.boards["late"].top(5) == [("dan", 10)]

    again = backend.make()
    await again.open()
    try:
        from_rows = Engine(RULES, BOARDS)
        await again.load(0.0, into=Restore(from_rows))
        from_snapshot = Engine(RULES, BOARDS)
        assert await restore_newest(again, from_snapshot) is not None
        await replay(again, from_snapshot)
    finally:
        await again.close()
    for restarted in (from_rows, from_snapshot):
        assert restarted.defs["cup"] == live.defs["cup"] and "late" in restarted.defs
        assert restored_state(restarted) == restored_state(live)
        assert restarted.boards["cup"].ascending and restarted.boards["cup"].competition
