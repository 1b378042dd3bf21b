"""Snapshots in every backend (memory, SQLite, PostgreSQL): kept, listed, read back; and
recovery from the newest good one plus the log after it equals a full replay."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from scoreboard.core.commands import Command, SetFrozen, SetNameHidden, SubmitAction
from scoreboard.core.engine import Engine
from scoreboard.core.errors import Rejection
from scoreboard.core.image import take
from scoreboard.core.rules import AbuseLimits, RuleSet
from scoreboard.storage import ActionLog
from scoreboard.storage.base import StoredSnapshot
from scoreboard.storage.snapshots import encode, replay, restore_newest

RULES = RuleSet.from_config({
    "COMPLETE_LEVEL": {"points": 10},
    "WIN_MATCH": {"points": 20, "limit": 3, "window": "1h"},
})
ABUSE = AbuseLimits(actions_per_minute=5, points_per_minute=0, auto_freeze=False)
T0 = 1_700_000_000.0


def engine() -> Engine:
    return Engine(RULES, ("global", "weekly"), abuse=ABUSE)


def commands(round_: int) -> list[Command]:
    users = [f"u{(round_ * 7 + i) % 13}" for i in range(6)]
    cmds: list[Command] = [
        SubmitAction(user_id=u, display_name=f"Name {u} {round_ // 3}",
                     board="weekly" if i % 3 == 0 else "global",
                     action_type="WIN_MATCH" if i % 2 else "COMPLETE_LEVEL",
                     client_action_id=f"r{round_}-{i}")
        for i, u in enumerate(users)
    ]
    cmds.append(SubmitAction(user_id=users[0], display_name=None, board="global",
                             action_type="COMPLETE_LEVEL", client_action_id=f"r{round_}-0"))
    if round_ % 4 == 1:
        cmds.append(SetFrozen(users[1], actor="adm", frozen=round_ % 8 == 1, reason="r"))
    if round_ % 5 == 2:
        cmds.append(SetNameHidden(users[2], hidden=True))
    return cmds


async def write_rounds(store: ActionLog, live: Engine, rounds: range) -> None:
    """What the writer does: decide a batch, append it, apply it."""
    for n in rounds:
        now = T0 + 30 * n
        pending = live.new_pending()
        for cmd in commands(n):
            try:
                live.decide(cmd, now, pending)
            except Rejection:
                pass
        if pending.records:
            await store.append(live.batch(pending))
            for r in pending.records:
                live.apply(r)


def stored(live: Engine, at: float = T0) -> StoredSnapshot:
    return encode(take(live), created_at=at)


async def test_snapshots_are_kept_newest_first_and_read_back(store: ActionLog) -> None:
    assert await store.snapshots() == []
    assert await store.read_snapshot(1) is None
    live = engine()
    for n in range(5):
        await write_rounds(store, live, range(n, n + 1))
        await store.save_snapshot(stored(live, T0 + n), keep=3)
    infos = await store.snapshots()
    assert [i.seq for i in infos] == sorted({i.seq for i in infos}, reverse=True)
    assert len(infos) == 3 and infos[0].seq == live.last_seq
    newest = await store.read_snapshot(infos[0].seq)
    assert newest == stored(live, T0 + 4)
    assert infos[0].size == len(newest.body) and infos[0].checksum == newest.checksum
    # The same seq again replaces it.
    await store.save_snapshot(stored(live, T0 + 99), keep=3)
    newest_info = next(iter(await store.snapshots()))
    assert (newest_info.seq, newest_info.created_at) == (live.last_seq, T0 + 99)


async def full_replay(store: ActionLog) -> Engine:
    replayed = engine()
    await replay(store, replayed)
    return replayed


async def test_recovery_from_a_snapshot_equals_a_full_replay(store: ActionLog) -> None:
    live = engine()
    await write_rounds(store, live, range(0, 12))
    await store.save_snapshot(stored(live), keep=3)
    at = live.last_seq
    await write_rounds(store, live, range(12, 25))

    recovered = engine()
    assert await restore_newest(store, recovered) == at
    assert await replay(store, recovered) == live.last_seq - at
    everything = await full_replay(store)
    assert recovered.state_digest() == everything.state_digest() == live.state_digest()
    assert recovered.memory_digest() == live.memory_digest()


async def test_a_damaged_snapshot_is_skipped_for_the_next_older(
    store: ActionLog, caplog: pytest.LogCaptureFixture
) -> None:
    live = engine()
    await write_rounds(store, live, range(0, 6))
    older = stored(live)
    await store.save_snapshot(older, keep=3)
    await write_rounds(store, live, range(6, 9))
    good = stored(live)
    await store.save_snapshot(dataclasses.replace(good, body=good.body[:-1] + b"!"), keep=3)
    await write_rounds(store, live, range(9, 12))
    beyond = take(live)
    # A snapshot of a seq the log does not reach (e.g. a database restored from an older
    # backup) is of no use either.
    await store.save_snapshot(encode(dataclasses.replace(beyond, last_seq=live.last_seq + 5),
                                     created_at=T0), keep=3)

    recovered = engine()
    with caplog.at_level(logging.WARNING, "scoreboard.storage.snapshots"):
        assert await restore_newest(store, recovered) == older.seq
    warnings = [r.getMessage() for r in caplog.records]
    assert any("checksum" in w for w in warnings) and any("log ends" in w for w in warnings)
    await replay(store, recovered)
    assert recovered.state_digest() == (await full_replay(store)).state_digest()


async def test_with_no_usable_snapshot_the_engine_is_untouched(store: ActionLog) -> None:
    live = engine()
    await write_rounds(store, live, range(0, 3))
    bad = stored(live)
    await store.save_snapshot(dataclasses.replace(bad, format="other/2"), keep=3)
    recovered = engine()
    assert await restore_newest(store, recovered) is None
    assert recovered.state_digest() == engine().state_digest()
    assert await restore_newest(store, recovered, up_to=0) is None
