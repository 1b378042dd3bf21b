"""Exclusions from a closed period (SPEC §11) on memory, SQLite and PostgreSQL: the
store takes the user's archive row out and closes positions and ranks up under either
ranks rule; the archiver applies a committed exclusion, and at start applies every
exclusion of the log, also to a period it just rebuilt from the log. No mocks; no
sleeps."""

from __future__ import annotations

import asyncio

from scoreboard.core.commands import ExcludeFromPeriod
from scoreboard.core.engine import Engine
from scoreboard.core.records import PeriodExclusionRecord
from scoreboard.core.recovery import Restore
from scoreboard.storage import ActionLog
from scoreboard.storage.base import ArchivedPeriod, ArchiveRow
from scoreboard.writer.actor import Writer
from scoreboard.writer.archiver import Archiver
from tests.storage.test_archiver import EXPECTED, engine, run_archiver, stop, two_days
from tests.storage.test_boards_contract import DAY1
from tests.storage.test_contract import Backend, backend, batch, store

__all__ = ["backend", "store"]  # the contract's fixtures, over the three backends

DAY = "2026-12-04"


def period(total: int) -> ArchivedPeriod:
    return ArchivedPeriod("daily", DAY, DAY1, DAY1 + 86_400, total, 10, True)


async def test_an_exclusion_closes_competition_ranks_up_and_keeps_ties(
        store: ActionLog) -> None:
    rows = [ArchiveRow(1, "amy", 30, 1), ArchiveRow(2, "bob", 20, 2), ArchiveRow(3, "cy", 20, 2),
            ArchiveRow(4, "dan", 20, 2), ArchiveRow(5, "eve", 5, 5), ArchiveRow(6, "fay", 5, 5),
            ArchiveRow(7, "gus", 1, 7)]
    await store.write_archive(period(7), rows)
    await store.write_archive(period(1)._replace(period="other", closed_seq=5),
                              [ArchiveRow(1, "bob", 9, 1)])
    assert await store.exclude_from_archive("daily", DAY, "bob")  # first of a tie
    assert await store.archive_page("daily", DAY, 0, 10) == [
        ArchiveRow(1, "amy", 30, 1), ArchiveRow(2, "cy", 20, 2), ArchiveRow(3, "dan", 20, 2),
        ArchiveRow(4, "eve", 5, 4), ArchiveRow(5, "fay", 5, 4), ArchiveRow(6, "gus", 1, 6)]
    assert await store.exclude_from_archive("daily", DAY, "fay")  # last of a tie
    assert await store.exclude_from_archive("daily", DAY, "amy")  # the top
    assert await store.archive_page("daily", DAY, 0, 10) == [
        ArchiveRow(1, "cy", 20, 1), ArchiveRow(2, "dan", 20, 1), ArchiveRow(3, "eve", 5, 3),
        ArchiveRow(4, "gus", 1, 4)]
    assert not await store.exclude_from_archive("daily", DAY, "bob")  # again: nothing
    assert not await store.exclude_from_archive("daily", "nope", "cy")
    assert (await store.archived_period("daily", DAY)) == period(4)
    assert await store.archive_user("daily", "other", "bob") == ArchiveRow(1, "bob", 9, 1)
    [listed, _] = await store.periods("daily", None, 10)
    assert listed.top == (ArchiveRow(1, "cy", 20, 1), ArchiveRow(2, "dan", 20, 1),
                          ArchiveRow(3, "eve", 5, 3))


async def test_an_exclusion_closes_ordinal_ranks_up(store: ActionLog) -> None:
    await store.write_archive(period(7), EXPECTED)
    assert await store.exclude_from_archive("daily", DAY, "p04")
    assert await store.archive_page("daily", DAY, 0, 10) == [
        ArchiveRow(i, r.user_id, r.score, i)
        for i, r in enumerate([r for r in EXPECTED if r.user_id != "p04"], 1)]


async def test_the_log_lists_its_exclusions(store: ActionLog) -> None:
    exclusion = PeriodExclusionRecord(1, DAY1, "daily", "amy", "Amy", 30, 30, "admin",
                                      "cheat", DAY)
    await store.append(batch(exclusion))
    assert await store.exclusions() == [exclusion]


def exclude(user: str) -> ExcludeFromPeriod:
    return ExcludeFromPeriod(user, actor="admin", board="daily", period=DAY, score=30,
                             reason="cheat")


async def log_exclusion(store: ActionLog, live: Engine, archiver: Archiver | None) -> None:
    writer = Writer(live, store, clock=lambda: DAY1 + 90_000)
    if archiver is not None:
        writer.listeners.append(archiver.on_commit)
    task = asyncio.create_task(writer.run())
    try:
        await writer.submit(exclude("p05"))
    finally:
        writer.stop()
        await asyncio.wait_for(task, 5)


WITHOUT_P05 = [ArchiveRow(i, r.user_id, r.score, i)
               for i, r in enumerate([r for r in EXPECTED if r.user_id != "p05"], 1)]


async def test_the_archiver_applies_a_committed_exclusion(store: ActionLog) -> None:
    live = engine()
    archiver = Archiver(live, store, engine)
    task = await run_archiver(archiver)
    try:
        await two_days(store, live, archiver)
        await asyncio.wait_for(archiver.idle(), 10)
        assert await store.archive_page("daily", DAY, 0, 10) == EXPECTED
        await log_exclusion(store, live, archiver)
        await asyncio.wait_for(archiver.idle(), 10)
    finally:
        await stop(archiver, task)
    assert await store.archive_page("daily", DAY, 0, 10) == WITHOUT_P05
    assert (await store.archived_period("daily", DAY) or period(0)).total_users == 6


async def test_a_start_applies_exclusions_to_a_period_it_rebuilds(backend: Backend) -> None:
    store = backend.make()
    await store.open()
    try:
        live = engine()
        await two_days(store, live)  # no archiver: the close is only in the log
        await log_exclusion(store, live, None)  # and the exclusion after it
        assert await store.archived_period("daily", DAY) is None
        for _ in range(2):  # a second start changes nothing
            restarted = engine()
            await store.load(0.0, into=Restore(restarted))
            archiver = Archiver(restarted, store, engine, chunk=2)
            await stop(archiver, await run_archiver(archiver))
            assert await store.archive_page("daily", DAY, 0, 10) == WITHOUT_P05
            assert (await store.archived_period("daily", DAY) or period(0)).total_users == 6
    finally:
        await store.close()
