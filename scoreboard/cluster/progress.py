"""How far this process has applied the log, and waiting until it reaches a seq.

Told of every applied batch (a writer's commit listener or a follower's tail). Reads
with `minSeq` and forwarded writes (read-your-writes) wait here, each for a bounded time.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable, Sequence

from scoreboard.core.records import LogRecord


class Progress:
    def __init__(self, applied: Callable[[], int]) -> None:
        self._applied = applied  # the engine's last seq
        # How long a read with minSeq may wait. 0 on the writer: it applies every seq
        # before answering it, so a seq it has not applied is not committed yet.
        self.patience = 0.0
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()  # ties between equal seqs, never comparing futures
        self._dropped = 0  # waiters that gave up and are still in the heap

    @property
    def applied(self) -> int:
        return self._applied()

    @property
    def queued(self) -> int:
        """Entries in the waiters' heap, those that gave up and are not yet dropped too."""
        return len(self._waiters)

    def on_commit(self, records: Sequence[LogRecord]) -> None:
        """Commit listener: wake everyone waiting for a seq now applied."""
        applied = self._applied()
        waiters = self._waiters
        while waiters and waiters[0][0] <= applied:
            fut = heapq.heappop(waiters)[2]
            if fut.done():
                self._dropped -= 1
            else:
                fut.set_result(None)

    async def wait(self, seq: int, within: float) -> bool:
        """True once `seq` is applied here; False if it is not within `within` s."""
        if seq <= self._applied():
            return True
        if within <= 0:
            return False
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (seq, next(self._order), fut))
        try:
            await asyncio.wait_for(asyncio.shield(fut), within)
        except TimeoutError:
            return seq <= self._applied()
        finally:
            if fut.cancel():  # gave up: dropped when its turn comes, or sooner
                self._gave_up()
        return True

    def _gave_up(self) -> None:
        """Waiters for seqs never reached (a `minSeq` far ahead) must not pile up: once
        most of the heap has given up, keep only those still waiting."""
        self._dropped += 1
        if self._dropped > 64 and 2 * self._dropped > len(self._waiters):
            self._waiters = [w for w in self._waiters if not w[2].done()]
            heapq.heapify(self._waiters)
            self._dropped = 0
