"""The archiver: a closed period's final standings into the store's archive (SPEC §11).

When a `period_closed` record commits, the engine keeps the period's final ranking
(`Engine.take_closed`); `Archiver.on_commit`, a commit listener of the writer, hands it
to the task `run`, which writes it in chunks of `chunk` rows (`ActionLog.write_archive`
inserts or ignores each row) and marks the period complete with the last one. The live
engine never waits for it.

On start, before anything new: every period the log closed whose archive is not
complete (the process stopped while writing it, or before it started) is rebuilt from
the log: an engine of the same boards restored from the newest snapshot before the
close and replayed up to it holds the very ranking the close ended. Rows are inserted
or ignored by user, so writing a period again from its first row changes nothing.

An administrator's exclusion (a `period_exclusion` record) is applied after the
archives before it, in log order: the user's row goes and the rows after it close up
(`ActionLog.exclude_from_archive`, a no-op for a user no longer there). On start, after
the rebuild, every exclusion of the log is applied again: one that committed while the
process stopped, or one whose period was just rebuilt from the log, takes effect.

The archive is derived from the log: a write that fails is logged and tried again,
and the log still holds everything.

The writer comes first (SPEC §10): no archive write holds anything a commit waits for
(SQLite keeps the archive in a file of its own, PostgreSQL writes it on a pooled session,
not the writer's), and the rows are built on the event loop in slices of a few
milliseconds with a pause after each, so a commit never waits behind a whole chunk
(`Ranking.standings`: a slice of rows at C speed). A chunk is written while the next
one is built.

The pause is a millisecond on the loop's selector (`PAUSE`), not a bare yield. The
thread that runs SQLite's commits (`sqlite_thread`) takes the interpreter lock back
after every statement; a thread waiting for the lock asks its holder to let go only
after a whole switch interval (5 ms) of waiting, and each time the holder lets go the
wait starts again. A loop that lets go at every yield and takes the lock straight back
for the next slice wakes the waiting thread each time without letting it in: in
`bench.boards` (SQLite, 1M users) the log's `BEGIN` waited up to 180 ms for the lock,
the log's thread idle and its disk quick, while the first chunks were built, and each
later commit 20-40 ms. With the pause the thread takes the lock within a slice.

Once a period is complete its ranking is freed a part at a time (`release`): a million
users let go of at once held the loop for about 100 ms.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence

import orjson

from scoreboard.core.engine import Engine
from scoreboard.core.ranking import Ranking
from scoreboard.core.records import LogRecord, PeriodClosedRecord, PeriodExclusionRecord
from scoreboard.storage.archive import EncodedRows
from scoreboard.storage.base import ActionLog, ArchivedPeriod, StoreError
from scoreboard.storage.snapshots import replay, restore_newest

log = logging.getLogger("scoreboard.writer.archiver")

# Rows per write: a transaction of its own, off the writer's path, so large enough that
# the cost per transaction does not count (see `sqlite_archive`); `bench.boards`.
CHUNK = 50_000
# Seconds of building rows on the event loop before it yields to whatever waits.
SLICE = 0.002
# Seconds the event loop then waits on its selector, the interpreter lock let go, so
# that a thread waiting for the lock (the log's commits) takes it (see above).
PAUSE = 0.001
_STEP = 512  # rows built between looks at the clock (about a tenth of a millisecond)


def _bound(t: float) -> float | None:
    return None if t in (float("inf"), float("-inf")) else t


class Archiver:
    def __init__(self, engine: Engine, store: ActionLog, make_engine: Callable[[], Engine],
                 *, chunk: int = CHUNK, retry_seconds: float = 5.0) -> None:
        self.engine = engine
        self.store = store
        self.make_engine = make_engine  # an empty engine of the same rules and boards
        self.chunk = chunk
        self.retry_seconds = retry_seconds
        self.archived = 0  # periods written complete by this process
        self._queue: deque[tuple[PeriodClosedRecord, Ranking] | PeriodExclusionRecord] = deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._closing = False
        self._releasing: set[asyncio.Future[None]] = set()  # a follower's (`on_followed`)

    def on_commit(self, records: Sequence[LogRecord]) -> None:
        """A commit listener: a committed close hands its final ranking over."""
        if any(isinstance(r, PeriodClosedRecord) for r in records):
            self._take()
        exclusions = [r for r in records if isinstance(r, PeriodExclusionRecord)]
        if exclusions:
            self._queue.extend(exclusions)
            self._idle.clear()
            self._wake.set()

    def on_followed(self, records: Sequence[LogRecord]) -> None:
        """A follower's listener: the writer archives, so a follower lets the closed
        rankings go (one that takes over rebuilds what is missing from the log)."""
        if any(isinstance(r, PeriodClosedRecord) for r in records):
            for _, ranking in self.engine.take_closed():
                task = asyncio.ensure_future(release(ranking))
                self._releasing.add(task)
                task.add_done_callback(self._releasing.discard)

    def _take(self) -> None:
        closed = self.engine.take_closed()
        if closed:
            self._queue.extend(closed)
            self._idle.clear()
            self._wake.set()

    async def run(self) -> None:
        """Complete what the log closed before this start, then archive each close as
        it commits, until `stop`."""
        started_seq = self.engine.last_seq
        self._take()  # closes that recovery replayed: their rankings are at hand
        await self._drain()
        if not self._closing:
            await self._rebuild(started_seq)
        if not self._closing:
            await self._exclude_logged(started_seq)
        while not self._closing:
            self._idle.set()
            await self._wake.wait()
            self._wake.clear()
            await self._drain()

    def stop(self) -> None:
        self._closing = True
        self._wake.set()

    async def idle(self) -> None:
        """Until every close handed over so far is archived (tests, shutdown)."""
        await self._idle.wait()

    async def _drain(self) -> None:
        while self._queue and not self._closing:
            item = self._queue[0]
            done = (await self._exclude(item) if isinstance(item, PeriodExclusionRecord)
                    else await self._write(*item))
            if not done:
                await self._pause()
                continue
            self._queue.popleft()
            if not isinstance(item, PeriodExclusionRecord):
                ranking = item[1]
                del item  # the ranking's last reference: `release` frees it in parts
                await release(ranking)

    async def _pause(self) -> None:
        """After a failed write: until `retry_seconds` pass or `stop`."""
        try:
            await asyncio.wait_for(self._wake.wait(), self.retry_seconds)
        except TimeoutError:
            pass
        self._wake.clear()

    async def _rebuild(self, up_to: int) -> None:
        """Archive every close up to seq `up_to` that the store has no complete
        archive of, replaying the log into an engine of its own."""
        try:
            missing = [r for r in await self.store.unarchived() if r.seq <= up_to]
        except StoreError as exc:
            log.warning("could not list the periods to archive: %s", exc)
            return
        if not missing:
            return
        wanted = {(r.board, r.seq) for r in missing}
        log.info("rebuilding %d closed periods from the log", len(missing))
        engine = self.make_engine()
        try:
            await restore_newest(self.store, engine, up_to=missing[0].seq - 1)
            await replay(self.store, engine, up_to=missing[-1].seq)
        except StoreError as exc:
            log.warning("could not replay the log to archive closed periods: %s", exc)
            return
        closed = engine.take_closed()
        rankings = [r for b in engine.board_sizes() if (r := engine.ranking(b)) is not None]
        del engine  # its rankings are freed in parts below, as each closed one is
        while closed:
            record, ranking = closed.pop(0)
            if (record.board, record.seq) in wanted and not self._closing:
                while not await self._write(record, ranking) and not self._closing:
                    await self._pause()
            await release(ranking)
        for ranking in rankings:
            await release(ranking)

    async def _exclude_logged(self, up_to: int) -> None:
        """Apply every exclusion the log holds up to seq `up_to` (the later ones are
        queued by `on_commit`)."""
        try:
            logged = [r for r in await self.store.exclusions() if r.seq <= up_to]
        except StoreError as exc:
            log.warning("could not list the exclusions from closed periods: %s", exc)
            return
        for r in logged:
            while not await self._exclude(r) and not self._closing:
                await self._pause()

    async def _exclude(self, r: PeriodExclusionRecord) -> bool:
        """Take the user out of the period's archive; False when the store refused."""
        try:
            if await self.store.exclude_from_archive(r.board, r.period, r.user_id):
                log.info("excluded %s from %s period %s", r.user_id, r.board, r.period)
        except StoreError as exc:
            log.warning("excluding %s from %s period %s failed: %s", r.user_id, r.board,
                        r.period, exc)
            return False
        return True

    async def _write(self, r: PeriodClosedRecord, ranking: Ranking) -> bool:
        """The period's rows in chunks, the last one marking it complete; False when the
        store refused (the caller tries again, from the first row)."""
        # Only positions are read from here on: the user map goes first (a no-op again).
        await _in_parts(ranking.keep_order_only())
        period = ArchivedPeriod(r.board, r.period, _bound(r.starts_at), _bound(r.ends_at),
                                len(ranking), r.seq, False)
        written = 0  # rows built so far
        writing: asyncio.Future[None] | None = None  # the chunk before, while building
        try:
            while True:
                rows = await self._rows(ranking, written)
                written += len(rows)
                if writing is not None:
                    await writing
                if len(rows) < self.chunk:  # the last
                    await self.store.write_archive(period._replace(complete=True), rows)
                    break
                writing = asyncio.ensure_future(self.store.write_archive(period, rows))
        except StoreError as exc:
            log.warning("archiving %s period %s failed: %s", r.board, r.period, exc)
            return False
        finally:
            if writing is not None and not writing.done():
                writing.cancel()
        self.archived += 1
        log.info("archived %s period %s: %d users", r.board, r.period, len(ranking))
        return True

    async def _rows(self, ranking: Ranking, start: int) -> EncodedRows:
        """The `chunk` rows from position `start` on (fewer: the last), a step at a time
        with a pause (`PAUSE`) every `SLICE` seconds, each step encoded to JSON as soon
        as it is built and its tuples dropped: a chunk in flight is its text only."""
        parts: list[bytes] = []
        count = 0
        deadline = time.perf_counter() + SLICE
        while count < self.chunk:
            step = min(_STEP, self.chunk - count)
            at = start + count
            part = ranking.standings(at, at + step)
            if part:
                parts.append(orjson.dumps(part)[1:-1])
            count += len(part)
            if len(part) < step:
                break
            del part
            if time.perf_counter() > deadline:
                await asyncio.sleep(PAUSE)
                deadline = time.perf_counter() + SLICE
        text = b",".join(parts)
        del parts
        return EncodedRows(f"[{text.decode()}]", count)


async def release(ranking: Ranking) -> None:
    """Free a ranking no one reads any more (a closed period's, archived) a part at a
    time: a million users freed at once would hold the event loop for about 100 ms."""
    await _in_parts(ranking.dismantle())


async def _in_parts(parts: Iterator[None]) -> None:
    """Run `parts` through, pausing the event loop (`PAUSE`) every `SLICE` seconds."""
    deadline = time.perf_counter() + SLICE
    for _ in parts:
        if time.perf_counter() > deadline:
            await asyncio.sleep(PAUSE)
            deadline = time.perf_counter() + SLICE
