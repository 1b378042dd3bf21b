"""`run.py verify`: rebuild the state from the whole log and compare it with the stored rows.

Read-only, so it runs beside a live server: no writer lock is taken, the stored rows come
from one snapshot, and the log is replayed up to that snapshot's last seq only (records
committed meanwhile are left for the next run)."""

from __future__ import annotations

import sys

from scoreboard.core.engine import Engine
from scoreboard.core.recovery import Restore
from scoreboard.settings.model import Settings
from scoreboard.storage import open_store
from scoreboard.storage.base import StoreError


def _engine(settings: Settings) -> Engine:
    return Engine(settings.rules, settings.board_definitions().values())


async def verify(settings: Settings) -> int:
    store = open_store(settings.server.database_url, settings.server.data_dir, read_only=True)
    try:
        await store.open()
    except StoreError as exc:
        print(f"cannot open the log: {exc}", file=sys.stderr)
        return 1
    try:
        stored = _engine(settings)
        await store.load(since=float("inf"), into=Restore(stored))
        replayed = _engine(settings)
        count = 0
        async for chunk in store.scan():
            if chunk[0].seq > stored.last_seq:
                break  # committed after the snapshot
            for record in chunk:
                if record.seq > stored.last_seq:
                    break
                if record.seq != replayed.last_seq + 1:
                    print(f"gap in the log: seq {replayed.last_seq} → {record.seq}")
                    return 1
                replayed.apply(record)
                count += 1
    finally:
        await store.close()
    a, b = stored.state_digest(), replayed.state_digest()
    problems = [key for key in a if a[key] != b[key]]
    if problems:
        print(f"MISMATCH between stored rows and the log in: {', '.join(problems)}")
        return 1
    users = sum(len(r) for r in replayed.boards.values())
    print(f"OK: {count} records replayed; {users} ranked users match the stored state")
    return 0
