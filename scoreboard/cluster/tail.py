"""A follower's tail of the log: apply every record the writer commits, in seq order.

The writer sends a notification with the last seq of each append, in the same
transaction. The tail reads the records after its own last seq whenever one arrives,
and at least every `poll_interval` seconds as a safety net (a notification missed
while the listening session was being replaced, a reconnect), applies them through the
engine's `apply` (exactly what recovery and the writer do), and tells the listeners —
the live hub and `Progress` — like the writer tells them after a commit.

Lag: `writer_seq` is the newest seq this process has heard of (a notification or the
log's max seq); seconds behind count from when it first heard of a seq not yet applied.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from contextlib import aclosing
from typing import Any

from scoreboard.core.engine import Engine
from scoreboard.core.records import LogRecord
from scoreboard.storage.base import StoreUnavailable
from scoreboard.storage.postgres.log import PostgresLog

log = logging.getLogger("scoreboard.cluster")

Listener = Callable[[Sequence[LogRecord]], None]


class Tail:
    def __init__(self, store: PostgresLog, engine: Engine, listeners: Sequence[Listener], *,
                 poll_interval: float, chunk: int = 2_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.engine = engine
        self.listeners = list(listeners)
        self.poll_interval = poll_interval
        self.chunk = chunk
        self.clock = clock
        self.writer_seq = engine.last_seq
        self.store_ok = True
        self._behind_since: float | None = None
        self._wake = asyncio.Event()
        self._listening: Any = None  # the LISTEN session, replaced when it ends

    # -- lag -----------------------------------------------------------------------------

    def heard(self, seq: int) -> None:
        """The writer has committed up to `seq` (a notification)."""
        if seq > self.writer_seq:
            self.writer_seq = seq
        if seq > self.engine.last_seq and self._behind_since is None:
            self._behind_since = self.clock()
        self._wake.set()

    def lag(self) -> tuple[int, float]:
        """(seqs, seconds) behind the newest seq heard of."""
        seqs = max(0, self.writer_seq - self.engine.last_seq)
        since = self._behind_since
        return seqs, (0.0 if seqs == 0 or since is None else self.clock() - since)

    # -- the loop ------------------------------------------------------------------------

    async def run(self) -> None:
        """Tail until cancelled (owned by the service's task watch)."""
        try:
            ask_the_log = True  # at first, and whenever the safety-net timer fires
            while True:
                if await self._ensure_listening():
                    ask_the_log = True  # notifications may have been missed meanwhile
                try:
                    if ask_the_log:
                        self.heard(await self.store.last_seq())
                    if self.writer_seq > self.engine.last_seq:
                        await self.catch_up()
                    self.store_ok = True
                except StoreUnavailable as exc:
                    if self.store_ok:
                        log.warning("cannot read the log: %s", exc)
                    self.store_ok = False
                try:
                    await asyncio.wait_for(self._wake.wait(), self.poll_interval)
                    # Woken by a notification, which names the seq: one read, no lookup.
                    ask_the_log = not self.store_ok
                except TimeoutError:
                    ask_the_log = True
                self._wake.clear()
        finally:
            await self._stop_listening()

    async def catch_up(self) -> int:
        """Apply every record after the engine's last seq; returns how many. A chunk
        shorter than asked for is the end of the log as it stood: what is committed
        after it comes with its own notification (or the next timer)."""
        engine = self.engine
        applied = 0
        async with aclosing(self.store.scan(after=engine.last_seq, chunk=self.chunk)) as chunks:
            async for chunk in chunks:
                for r in chunk:
                    if r.seq != engine.last_seq + 1:
                        raise RuntimeError(
                            f"the log skips from seq {engine.last_seq} to {r.seq}")
                    engine.apply(r)  # never fails; if it did, the task dies and we restart
                engine.settle()
                applied += len(chunk)
                self._tell(chunk)
                if len(chunk) < self.chunk:
                    break
        if engine.last_seq >= self.writer_seq:
            self.writer_seq = engine.last_seq
            self._behind_since = None
        elif applied:
            self._behind_since = self.clock()  # still behind, but moving
        return applied

    def _tell(self, records: Sequence[LogRecord]) -> None:
        for listener in self.listeners:
            try:
                listener(records)
            except Exception:  # the state stands; a listener is not the log
                log.exception("a tail listener failed")

    async def _ensure_listening(self) -> bool:
        """Listen if not listening; True when a new session began listening now."""
        conn = self._listening
        if conn is not None and not conn.is_closed():
            return False
        self._listening = None
        try:
            self._listening = await self.store.listen(self.heard, self._wake.set)
        except StoreUnavailable as exc:
            log.warning("cannot LISTEN for new records (polling meanwhile): %s", exc)
            return False
        return True

    async def _stop_listening(self) -> None:
        conn, self._listening = self._listening, None
        if conn is not None and not conn.is_closed():
            try:
                await asyncio.wait_for(conn.close(), 2.0)
            except Exception:  # closing a session that is going anyway
                conn.terminate()
