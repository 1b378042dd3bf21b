"""Committed records for consumers that each keep their own position.

The writer tells the feed of every committed batch (a commit listener); the feed keeps
the newest `buffer_records` of them in memory and wakes whoever waits. A consumer asks
for the records after the seq it has and gets them from memory when memory still holds
them, else from the log, one chunk per call: however far behind it is, it catches up at
its own pace and costs one chunk, never a buffer that grows.

There is no handover to get wrong: every read starts from the consumer's own position,
and memory is only used when it holds the very next seq, so a record committed while a
consumer was reading the log is simply in its next read. Memory is a contiguous run of
seqs; if it ever missed a batch it starts over, and the log serves what came before.
"""

from __future__ import annotations

import asyncio
from bisect import bisect_right
from collections.abc import Callable, Sequence

from scoreboard.core.records import LogRecord
from scoreboard.storage.base import ActionLog


def _seq(r: LogRecord) -> int:
    return r.seq


class EventFeed:
    def __init__(self, store: ActionLog, head: Callable[[], int], *,
                 buffer_records: int) -> None:
        self.store = store
        # The newest committed seq. The engine's: it applies a batch only after the
        # commit, and tells listeners after applying, so `head` is never ahead of the log.
        self.head = head
        self.buffer_records = buffer_records
        self._ring: list[LogRecord] = []
        self._changed = asyncio.Event()
        self.closing = False

    def on_commit(self, records: Sequence[LogRecord]) -> None:
        """Writer listener: a batch was committed and applied."""
        ring = self._ring
        if self.buffer_records and records:
            if ring and records[0].seq != ring[-1].seq + 1:
                ring.clear()  # a batch was missed: what came before is read from the log
            ring.extend(records)
            if len(ring) > 2 * self.buffer_records:  # trimmed in steps: amortized O(1)
                del ring[: len(ring) - self.buffer_records]
        self._wake()

    def close(self) -> None:
        """Shutting down: every waiting consumer returns."""
        self.closing = True
        self._wake()

    def wake(self) -> None:
        """Wake every waiting consumer to look at its own state (a stream whose token
        ended); nothing new was committed, so waiters that want records wait on."""
        self._wake()

    def _wake(self) -> None:
        # A fresh event per change: a waiter that took the old one cannot miss the set.
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    @property
    def buffered(self) -> int:
        return len(self._ring)

    async def read(self, after: int, limit: int) -> list[LogRecord]:
        """Up to `limit` records with seq > `after`, in seq order; [] when none is new."""
        ring = self._ring
        if ring and ring[0].seq <= after + 1:
            start = bisect_right(ring, after, key=_seq)
            if start < len(ring):
                return ring[start : start + limit]
        if after >= self.head():
            return []
        chunks = self.store.scan(after=after, chunk=limit)
        try:
            return (await anext(chunks, []))[:limit]
        finally:  # one chunk per call: the scan is not kept open between calls
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                await aclose()

    async def wait(self, after: int, seconds: float, *, closable: bool = True,
                   stop: Callable[[], bool] = lambda: False) -> bool:
        """Wait until a record after `after` is committed (True), or `seconds` pass,
        the feed closes or `stop()` turns true after a `wake` (False). A consumer that
        must go on until it is cancelled (the NATS publisher, which also publishes the
        records of the final drain) passes `closable=False`."""
        try:
            async with asyncio.timeout(seconds):
                while after >= self.head() and not (closable and self.closing) and not stop():
                    await self._changed.wait()
        except TimeoutError:
            return False
        return not (closable and self.closing) and not stop()
