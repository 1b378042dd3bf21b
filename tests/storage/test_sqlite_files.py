"""SQLite's files on disk: owner-only, whoever else shares the machine."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scoreboard.core.records import ActionRecord, CommitBatch, ScoreRow, UserRow
from scoreboard.storage.base import StoreUnavailable
from scoreboard.storage.sqlite import SqliteLog


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def one_action() -> CommitBatch:
    record = ActionRecord(seq=1, at=1.0, board="global", user_id="amy", display_name=None,
                          delta=10, prev_score=0, new_score=10, client_action_id="c1",
                          action_type="COMPLETE_LEVEL")
    return CommitBatch((record,), (ScoreRow("global", "amy", 10, 1),),
                       (UserRow("amy", None, False, False),))


async def test_the_folder_and_every_file_in_it_are_owner_only(tmp_path: Path) -> None:
    old = os.umask(0o022)  # the usual umask: files 0644 unless asked otherwise
    try:
        log = SqliteLog(tmp_path / "data" / "scoreboard.db")
        await log.open()
        try:
            await log.append(one_action())
            files = sorted(p.name for p in (tmp_path / "data").iterdir())
            assert files == ["scoreboard-archive.db", "scoreboard-archive.db-shm",
                             "scoreboard-archive.db-wal", "scoreboard.db", "scoreboard.db-shm",
                             "scoreboard.db-wal", "scoreboard.db.lock"]
            assert mode(tmp_path / "data") == 0o700
            assert {name: mode(tmp_path / "data" / name) for name in files} == dict.fromkeys(
                files, 0o600)
        finally:
            await log.close()
    finally:
        os.umask(old)


async def test_files_left_readable_by_an_older_version_are_tightened(tmp_path: Path) -> None:
    first = SqliteLog(tmp_path / "scoreboard.db")
    await first.open()
    await first.append(one_action())
    await first.close()
    for name in ("scoreboard.db", "scoreboard.db.lock", "scoreboard-archive.db"):
        (tmp_path / name).chmod(0o644)
    again = SqliteLog(tmp_path / "scoreboard.db")
    await again.open()
    try:
        assert await again.last_seq() == 1
        assert {mode(tmp_path / name) for name in (
            "scoreboard.db", "scoreboard.db.lock", "scoreboard-archive.db")} == {0o600}
    finally:
        await again.close()


async def test_read_only_opens_beside_the_writer_and_creates_nothing(tmp_path: Path) -> None:
    missing = SqliteLog(tmp_path / "none" / "scoreboard.db", read_only=True)
    with pytest.raises(StoreUnavailable, match="no such database file"):
        await missing.open()
    assert not (tmp_path / "none").exists()
    writer = SqliteLog(tmp_path / "scoreboard.db")
    await writer.open()
    try:
        await writer.append(one_action())
        reader = SqliteLog(tmp_path / "scoreboard.db", read_only=True)
        await reader.open()
        try:
            assert await reader.last_seq() == 1
            assert [r.seq for chunk in [c async for c in reader.scan()] for r in chunk] == [1]
        finally:
            await reader.close()
        assert await writer.last_seq() == 1  # the writer kept its lock and connection
    finally:
        await writer.close()
