"""Snapshots of a running service: written periodically and on a clean shutdown, the
start after it begins from one, and `verify` compares the newest with the log."""

from __future__ import annotations

import dataclasses

import pytest

from scoreboard.storage import open_store
from scoreboard.storage.snapshots import decode, encode
from scoreboard.storage.verify import verify
from tests.integration.conftest import ServerFactory, wait_for

OFTEN = {"writer.snapshot_every_records": 5, "writer.snapshot_seconds": 0}


async def test_snapshots_are_written_and_the_next_start_begins_from_one(
    start_server: ServerFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    server = await start_server(**OFTEN)
    snapshots = server.service.snapshots
    assert snapshots is not None
    for n in range(12):
        status, _ = await server.act(f"user{n % 4}", cid=f"c{n}")
        assert status == 200
    await wait_for(lambda: snapshots.written >= 1)
    _, board = await server.get("/api/v1/leaderboard?limit=100")
    last_seq = server.service.engine.last_seq
    await server.stop()
    assert snapshots.saved_seq == last_seq  # the clean shutdown wrote the last one

    again = await start_server(**OFTEN)
    assert again.service.snapshots is not None
    assert again.service.snapshots.saved_seq == last_seq  # started from it
    assert again.service.engine.last_seq == last_seq
    _, board_again = await again.get("/api/v1/leaderboard?limit=100")
    assert board_again["entries"] == board["entries"]
    status, body = await again.act("user1", cid="c1")  # keys came back with the snapshot
    assert status == 200 and body["replayed"] is True
    await again.stop()

    capsys.readouterr()
    assert await verify(again.settings) == 0
    assert f"the snapshot at seq {last_seq} matches the log" in capsys.readouterr().out


async def test_verify_reports_a_snapshot_that_differs_from_the_log(
    start_server: ServerFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    server = await start_server(**OFTEN)
    for n in range(6):
        assert (await server.act(f"user{n % 2}", cid=f"c{n}"))[0] == 200
    await server.stop()

    s = server.settings.server
    store = open_store(s.database_url, s.data_dir)
    await store.open()
    try:
        newest = next(iter(await store.snapshots()))
        found = await store.read_snapshot(newest.seq)
        assert found is not None
        image = decode(found)
        board = image.boards[0] if image.boards[0].users else image.boards[-1]
        wrong = dataclasses.replace(board, scores=[x + 1 for x in board.scores])
        forged = dataclasses.replace(
            image, boards=[wrong if b is board else b for b in image.boards])
        await store.save_snapshot(encode(forged, created_at=found.created_at), keep=3)
    finally:
        await store.close()

    capsys.readouterr()
    assert await verify(server.settings) == 1
    out = capsys.readouterr().out
    assert f"MISMATCH between the snapshot at seq {newest.seq} and the log" in out
    assert "boards" in out
