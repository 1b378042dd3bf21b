"""Periodic snapshots of the writer's engine, so a restart replays only the log after one.

`Snapshotter.on_commit` is a commit listener of the writer: it runs on the loop right
after a batch is applied, at a seq boundary, which is where a consistent image can be
taken. When one is due (`every_records` records or `every_seconds` seconds since the
last, whichever comes first) it only copies the state (`capture`: milliseconds for a
million users); the task `run` turns the copies into the stored form in a thread and
writes it while the writer goes on. One snapshot is in the works at a time; commits
meanwhile count toward the next. `final` writes one more on a clean shutdown, after the
writer drained, so the next start replays nothing.

A snapshot is an optimisation, never the truth: one that fails to be written is logged
and the log still holds everything.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from scoreboard.core.engine import Engine
from scoreboard.core.image import Capture, capture
from scoreboard.core.records import LogRecord
from scoreboard.storage.base import ActionLog, StoredSnapshot, StoreError
from scoreboard.storage.snapshots import KEEP, encode

log = logging.getLogger("scoreboard.writer.snapshots")


class Snapshotter:
    def __init__(
        self,
        engine: Engine,
        store: ActionLog,
        *,
        every_records: int,
        every_seconds: float,
        keep: int = KEEP,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.store = store
        self.every_records = every_records  # 0: not by count
        self.every_seconds = every_seconds  # 0: not by time
        self.keep = keep
        self.clock = clock
        self.saved_seq = 0  # the newest snapshot this process wrote (or started from)
        self.written = 0
        self._since = 0  # records applied since the last capture
        self._last = time.monotonic()
        self._due: Capture | None = None
        self._writing = False
        self._closing = False
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def periodic(self) -> bool:
        return self.every_records > 0 or self.every_seconds > 0

    def on_commit(self, records: Sequence[LogRecord]) -> None:
        """A commit listener: count, and take the state when a snapshot is due."""
        self._since += len(records)
        if self._due is not None or self._writing or self._closing or not self.periodic:
            return
        by_count = self.every_records and self._since >= self.every_records
        by_time = self.every_seconds and time.monotonic() - self._last >= self.every_seconds
        if by_count or by_time:
            self._due = capture(self.engine)
            self._since = 0
            self._last = time.monotonic()
            self._idle.clear()
            self._wake.set()

    async def run(self) -> None:
        """Write what `on_commit` captured, one at a time, until `stop`."""
        while not self._closing:
            await self._wake.wait()
            self._wake.clear()
            due, self._due = self._due, None
            if due is not None:
                await self._write(due)
            self._idle.set()

    def stop(self) -> None:
        """No new snapshot is taken; `run` ends after the one in the works (if any)."""
        self._closing = True
        self._wake.set()

    async def final(self) -> None:
        """After the writer drained (clean shutdown): the snapshot of the last seq,
        unless the newest one is of it already."""
        self._closing = True
        await self._idle.wait()
        if self.engine.last_seq > self.saved_seq:
            await self._write(capture(self.engine))

    async def _write(self, due: Capture) -> None:
        self._writing = True
        started = time.perf_counter()
        log.info("writing the snapshot at seq %d", due.last_seq)
        try:
            stored = await asyncio.to_thread(self._encode, due)
            await self.store.save_snapshot(stored, keep=self.keep)
        except (StoreError, OSError) as exc:
            log.warning("the snapshot at seq %d was not written: %s", due.last_seq, exc)
            return
        finally:
            self._writing = False
        self.saved_seq = max(self.saved_seq, due.last_seq)
        self.written += 1
        log.info("snapshot at seq %d written: %d bytes in %.3f s", stored.seq,
                 len(stored.body), time.perf_counter() - started)

    def _encode(self, due: Capture) -> StoredSnapshot:
        return encode(due.image(), created_at=self.clock())
