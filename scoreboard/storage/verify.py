"""`run.py verify`: rebuild the state from the whole log and compare it with the stored rows,
and with the newest snapshot at its seq.

Read-only, so it runs beside a live server: no writer lock is taken, the stored rows come
from one snapshot, and the log is replayed up to that snapshot's last seq only (records
committed meanwhile are left for the next run)."""

from __future__ import annotations

import sys
from typing import Any

from scoreboard.core.engine import Engine
from scoreboard.core.image import restore
from scoreboard.core.recovery import Restore
from scoreboard.settings.model import Settings
from scoreboard.storage import open_store
from scoreboard.storage.base import ActionLog, StoreError
from scoreboard.storage.snapshots import SnapshotDamaged, decode


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
        try:
            snapshot = await _newest_snapshot(store, settings)
        except SnapshotDamaged as exc:
            print(f"MISMATCH: the newest snapshot cannot be used: {exc}")
            return 1
        replayed = _engine(settings)
        at_snapshot: dict[str, Any] | None = None
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
                if snapshot is not None and record.seq == snapshot.last_seq:
                    at_snapshot = replayed.state_digest()
            replayed.settle()  # a chunk's keys ordered in bulk
    finally:
        await store.close()
    a, b = stored.state_digest(), replayed.state_digest()
    problems = [key for key in a if a[key] != b[key]]
    if problems:
        print(f"MISMATCH between stored rows and the log in: {', '.join(problems)}")
        return 1
    users = sum(replayed.board_sizes().values())
    checked = ""
    if snapshot is not None:
        c = snapshot.state_digest()
        if at_snapshot is None:
            print(f"MISMATCH: the newest snapshot is of seq {snapshot.last_seq}, "
                  f"beyond the log's end ({replayed.last_seq})")
            return 1
        problems = [key for key in c if c[key] != at_snapshot[key]]
        if problems:
            print(f"MISMATCH between the snapshot at seq {snapshot.last_seq} and the log "
                  f"in: {', '.join(problems)}")
            return 1
        checked = f"; the snapshot at seq {snapshot.last_seq} matches the log there"
    print(f"OK: {count} records replayed; {users} ranked users match the stored state"
          f"{checked}")
    return 0


async def _newest_snapshot(store: ActionLog, settings: Settings) -> Engine | None:
    """The engine the newest snapshot restores (None without one); raises
    `SnapshotDamaged` for one that cannot be used."""
    for info in await store.snapshots():
        found = await store.read_snapshot(info.seq)
        if found is None:
            continue  # deleted since it was listed
        engine = _engine(settings)
        try:
            restore(engine, decode(found))
        except SnapshotDamaged:
            raise
        except ValueError as exc:
            raise SnapshotDamaged(f"the image does not hold together: {exc}") from None
        return engine
    return None
