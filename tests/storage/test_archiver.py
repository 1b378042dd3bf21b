"""The archiver on memory, SQLite and PostgreSQL: a closed period's standings written in
chunks and listed with their top 3, and at start-up every period the log closed without
a complete archive rebuilt from the log. No mocks; no sleeps."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from pathlib import Path

from scoreboard.core.engine import Engine
from scoreboard.core.recovery import Restore
from scoreboard.storage import ActionLog, schema
from scoreboard.storage.archive import ArchiveQueries
from scoreboard.storage.base import ArchivedPeriod, ArchiveRow
from scoreboard.storage.sqlite import SqliteLog
from scoreboard.storage.sqlite_archive import ATTACHED, archive_path
from scoreboard.writer.actor import Writer
from scoreboard.writer.archiver import Archiver
from tests.storage.test_boards_contract import BOARDS, DAY1, RULES, run_writer, win
from tests.storage.test_contract import Backend, backend, store

__all__ = ["backend", "store"]  # the contract's fixtures, over the three backends

PEOPLE = [f"p{i:02d}" for i in range(7)]


def engine() -> Engine:
    return Engine(RULES, BOARDS)


async def two_days(store: ActionLog, live: Engine, archiver: Archiver | None = None) -> None:
    """Day 1: p00..p06 score 10 * (i % 3 + 1) on the daily board; day 2 closes it."""
    day1 = [win(p, f"{p}-{k}") for i, p in enumerate(PEOPLE) for k in range(i % 3 + 1)]
    if archiver is None:
        await run_writer(live, store, [(DAY1, day1), (DAY1 + 86_400, [win("zed", "1")])])
        return
    now = [DAY1]
    writer = Writer(live, store, clock=lambda: now[0])
    writer.listeners.append(archiver.on_commit)
    task = asyncio.create_task(writer.run())
    try:
        for cmd in day1:
            await writer.submit(cmd)
        now[0] = DAY1 + 86_400
        await writer.submit(win("zed", "1"))
    finally:
        writer.stop()
        await asyncio.wait_for(task, 5)


EXPECTED = [ArchiveRow(1, "p02", 30, 1), ArchiveRow(2, "p05", 30, 2),
            ArchiveRow(3, "p01", 20, 3), ArchiveRow(4, "p04", 20, 4),
            ArchiveRow(5, "p00", 10, 5), ArchiveRow(6, "p03", 10, 6),
            ArchiveRow(7, "p06", 10, 7)]


async def run_archiver(archiver: Archiver) -> asyncio.Task[None]:
    task = asyncio.create_task(archiver.run())
    await asyncio.wait_for(archiver.idle(), 10)
    return task


async def stop(archiver: Archiver, task: asyncio.Task[None]) -> None:
    archiver.stop()
    await asyncio.wait_for(task, 5)


async def test_a_rollover_is_archived_in_chunks_and_listed_with_its_top_3(
        store: ActionLog) -> None:
    live = engine()
    archiver = Archiver(live, store, engine, chunk=3)
    task = await run_archiver(archiver)
    try:
        await two_days(store, live, archiver)
        await asyncio.wait_for(archiver.idle(), 10)
    finally:
        await stop(archiver, task)
    assert archiver.archived == 1
    [period] = await store.periods("daily", None, 10)
    assert (period.period, period.total_users, period.complete) == ("2026-12-04", 7, True)
    assert list(period.top) == EXPECTED[:3]
    assert await store.archive_page("daily", "2026-12-04", 0, 4) == EXPECTED[:4]
    assert await store.archive_page("daily", "2026-12-04", 4, 4) == EXPECTED[4:]
    assert await store.archive_user("daily", "2026-12-04", "p04") == EXPECTED[3]


async def test_a_start_completes_a_period_left_incomplete(backend: Backend) -> None:
    store = backend.make()
    await store.open()
    try:
        await two_days(store, engine())  # no archiver: the close is only in the log
        # as if a process had stopped after its first chunk
        first = ArchivedPeriod("daily", "2026-12-04", DAY1 - 43_200, DAY1 + 43_200, 7, 0,
                               False)
        [close] = await store.unarchived()
        await store.write_archive(first._replace(closed_seq=close.seq), EXPECTED[:2])
        assert await store.periods("daily", None, 10) == []
        assert await store.archived_period("daily", "2026-12-04") is None  # incomplete
        restarted = engine()
        await store.load(0.0, into=Restore(restarted))
        archiver = Archiver(restarted, store, engine, chunk=2)
        await stop(archiver, await run_archiver(archiver))
        assert archiver.archived == 1 and await store.unarchived() == []
        [period] = await store.periods("daily", None, 10)
        assert period.complete and list(period.top) == EXPECTED[:3]
        assert await store.archived_period("daily", "2026-12-04") == period._replace(top=())
        assert await store.archive_page("daily", "2026-12-04", 0, 10) == EXPECTED
    finally:
        await store.close()


async def test_the_start_up_reads_use_an_index_not_the_whole_log(tmp_path: Path) -> None:
    # Every start lists the closes without an archive and every exclusion: with ten
    # million records a scan held SQLite's one reading connection for seconds.
    log = SqliteLog(tmp_path / "scoreboard.db")
    await log.open()
    await log.close()
    queries = ArchiveQueries.of(schema.SQLITE)
    with closing(sqlite3.connect(tmp_path / "scoreboard.db")) as db:
        # as the log's read connection does: the archive's tables are in their own file
        db.execute(f"ATTACH DATABASE ? AS {ATTACHED}",
                   (str(archive_path(tmp_path / "scoreboard.db")),))
        for sql in (queries.unarchived, queries.exclusions):
            plan = [row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {sql}")]
            assert "SCAN action_log" not in plan, plan
            assert any(step.startswith("SCAN action_log USING INDEX") for step in plan), plan
