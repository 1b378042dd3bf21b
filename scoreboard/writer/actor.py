"""The writer actor: the only code that changes the engine.

Requests wait in a bounded queue as (command, reply future), or as a unit of several
(`submit_many`: a trusted backend's batch), which is never split: it is decided in order
within one batch and committed in one transaction. The actor takes everything waiting
when the previous commit finished (up to `max_batch`; a unit may pass it), decides each
command against committed state plus the batch so far, appends the batch to the log in one
transaction, and only then applies it to the engine, tells the listeners and replies.
Readers therefore never see an uncommitted effect.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from scoreboard.core import errors
from scoreboard.core.commands import ActionResult, AdjustScore, Command, SubmitAction
from scoreboard.core.engine import Engine, Replay, command_fingerprint
from scoreboard.core.errors import Refused
from scoreboard.core.records import CommitBatch, LogRecord
from scoreboard.runtime.retry import Backoff
from scoreboard.storage.base import (
    ActionLog,
    DuplicateAction,
    DuplicateProof,
    StoreUnavailable,
    WriterFenced,
)
from scoreboard.writer.errors import (
    Overloaded,
    Result,
    ShuttingDown,
    StateDiverged,
    StoreDown,
    Submitter,
    WriterError,
    WriterStopped,
)

__all__ = [
    "Overloaded", "Result", "ShuttingDown", "StateDiverged", "StoreDown", "Submitter",
    "Writer", "WriterError", "WriterStopped",
]

log = logging.getLogger("scoreboard.writer.actor")

CommitListener = Callable[[Sequence[LogRecord]], None]
RETRY_BASE, RETRY_CAP = 0.02, 0.5  # seconds between attempts at a commit


_Item = tuple[Command, "asyncio.Future[Result]"]
_Unit = list[_Item]  # queued, taken and decided together (never split across batches)


def _consume(fut: asyncio.Future[Any]) -> None:
    # A client may hang up before its reply is ready; its failure is still handled.
    if not fut.cancelled():
        fut.exception()


class Writer:
    def __init__(
        self,
        engine: Engine,
        store: ActionLog,
        *,
        queue_size: int = 10_000,
        max_batch: int = 512,
        retry_seconds: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.store = store
        self.max_batch = max_batch
        self.retry_seconds = retry_seconds
        self.clock = clock
        # Told of every committed batch after its callers are answered; a listener that
        # raises is logged and reported to `listener_error_observers`, nothing more.
        self.listeners: list[CommitListener] = []
        self.listener_error_observers: list[Callable[[BaseException], None]] = []
        self.batch_observers: list[Callable[[int, float], None]] = []
        # Unbounded as a queue, bounded in commands: a unit counts by its size.
        self._queue: asyncio.Queue[_Item | _Unit | None] = asyncio.Queue()
        self._queue_size = queue_size
        self._queued = 0
        self._inflight: dict[tuple[str, str], tuple[Command, asyncio.Future[Result]]] = {}
        # Futures of units whose callers rank the results themselves (`ranked=False`).
        self._unranked: set[asyncio.Future[Result]] = set()
        self._closing = False
        self._stopped = False  # run() has ended: nothing will answer new commands
        self._batch: list[_Item] = []  # the batch being processed, failed if run() dies
        # When each waiting request was queued: a batch retries only until its oldest
        # request has waited retry_seconds, so a request queued behind a retrying batch
        # never waits a second full retry_seconds of its own.
        self._queued_at: dict[asyncio.Future[Result], float] = {}
        self._deadline = 0.0  # monotonic; the current batch's last moment to retry
        self._suspect = False  # a commit ended without knowing whether it landed
        self.store_ok = True
        self._last_expire = 0.0

    @property
    def queue_depth(self) -> int:
        return self._queued

    # -- the caller's side ---------------------------------------------------------------

    def _admit(self, count: int) -> None:
        if self._closing:
            raise ShuttingDown("the service is shutting down", retry_after=2.0)
        if self._stopped:
            raise WriterStopped("the writer has stopped; the service is restarting", 2.0)
        if self._queued + count > self._queue_size:
            raise Overloaded("the writer queue is full", retry_after=1.0)

    async def submit(self, cmd: Command) -> Result:
        """Decide, commit and apply `cmd`; returns once it is durable and visible."""
        self._admit(0)
        key = cmd.idempotency_key
        if key is not None:
            hit = self._inflight.get(key)
            if hit is not None:
                # Fingerprints only on a collision: the common path never pays for them.
                assert isinstance(cmd, SubmitAction | AdjustScore)
                first = hit[0]
                assert isinstance(first, SubmitAction | AdjustScore)
                if command_fingerprint(first) != command_fingerprint(cmd):
                    raise errors.IdempotencyConflict(
                        "clientActionId is in use with a different payload"
                    )
                try:
                    result = await asyncio.shield(hit[1])
                except asyncio.CancelledError:
                    if not hit[1].cancelled():
                        raise  # this caller is being cancelled
                    # The first copy's caller went away first: queue this copy itself.
                else:
                    return replace(result, replayed=True) \
                        if isinstance(result, ActionResult) else result
        fut: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        fut.add_done_callback(_consume)
        self._admit(1)  # again: the wait for an in-flight copy may have been long
        self._queue.put_nowait((cmd, fut))
        self._queued += 1
        self._queued_at[fut] = time.monotonic()
        if key is not None:
            self._inflight[key] = (cmd, fut)
            fut.add_done_callback(lambda _: self._inflight.pop(key, None))
        # Not shielded: if this caller is cancelled the future is too, and the actor
        # skips answering it (the change itself still commits if it was decided).
        return await fut

    async def submit_many(self, cmds: Sequence[Command], *, ranked: bool = True
                          ) -> list[Result | Refused]:
        """Decide, commit and apply `cmds` as one unit, in order, in one transaction
        (with whatever else the batch holds). Each command gets its own answer: its
        result, or the refusal `submit` would have raised for it. The unit is refused
        whole (`Overloaded`) when the queue has no room for all of it. With `ranked`
        false results carry no rank: a follower ranks them itself once applied.

        Copies of a key inside the unit, or of a key already in flight, need no waiting
        here: the unit is decided after everything queued before it, so the engine sees
        the first copy (committed, or pending in the same batch) and answers a replay;
        a single copy sent later is queued behind the unit and replays it the same way.
        """
        self._admit(len(cmds))
        create = asyncio.get_running_loop().create_future
        unit: _Unit = [(cmd, create()) for cmd in cmds]
        if not ranked:
            self._unranked.update(fut for _, fut in unit)
        self._queue.put_nowait(unit)
        self._queued += len(unit)
        answers: list[Result | Refused] = []
        try:
            # The futures are answered together: after the first, awaiting is free.
            for _, fut in unit:
                try:
                    answers.append(await fut)
                except Refused as exc:
                    answers.append(exc)
        except BaseException:
            for _, fut in unit:  # the actor skips cancelled ones; nothing is left waiting
                if not fut.done():
                    fut.cancel()
                elif not fut.cancelled():
                    fut.exception()  # retrieved: never logged as unhandled
            raise
        finally:
            if not ranked:
                self._unranked.difference_update(fut for _, fut in unit)
        return answers

    def stop(self) -> None:
        """Refuse new commands; `run` returns once everything queued is answered."""
        self._closing = True
        self._queue.put_nowait(None)  # wake an idle loop

    # -- the actor's side ----------------------------------------------------------------

    async def run(self) -> None:
        """Take batches until `stop()`; owned by the service, which treats any other
        end of this task as a crash. However it ends, nobody is left waiting."""
        try:
            await self._loop()
        finally:
            self._stopped = True
            self._fail_waiting(WriterStopped("the writer has stopped", 2.0))

    async def _loop(self) -> None:
        queue = self._queue
        while True:
            items: list[_Item] = []
            self._take(await queue.get(), items)
            while len(items) < self.max_batch and not queue.empty():
                self._take(queue.get_nowait(), items)
            if items:
                self._batch = items
                queued_at = self._queued_at
                now = time.monotonic()
                oldest = min([queued_at.pop(fut, now) for _, fut in items])
                self._deadline = oldest + self.retry_seconds
                try:
                    await self._process(items)
                except (StateDiverged, WriterFenced):
                    raise  # fatal: a restart rebuilds from the log
                except Exception as exc:  # never leave a caller waiting forever
                    log.exception("writer batch failed")
                    for _, fut in items:
                        if not fut.done():
                            fut.set_exception(StoreDown(f"write failed: {exc}"))
                self._batch = []
            if self._closing and queue.empty():
                return

    def _take(self, entry: _Item | _Unit | None, items: list[_Item]) -> None:
        if entry is None:
            return
        if isinstance(entry, list):
            items.extend(entry)
            self._queued -= len(entry)
        else:
            items.append(entry)
            self._queued -= 1

    def _fail_waiting(self, err: WriterError) -> None:
        waiting = list(self._batch)
        while not self._queue.empty():
            self._take(self._queue.get_nowait(), waiting)
        waiting.extend(self._inflight.values())
        self._queued_at.clear()
        for _, fut in waiting:
            if not fut.done():
                fut.set_exception(err)

    def _tell_listeners(self, records: Sequence[LogRecord]) -> None:
        for listener in self.listeners:
            try:
                listener(records)
            except Exception as exc:  # the write stands; a listener is not the log
                log.exception("a commit listener failed")
                for observe in self.listener_error_observers:
                    observe(exc)

    async def _process(self, items: list[_Item], *, retried: bool = False) -> None:
        engine = self.engine
        if self._suspect:
            try:
                await self._resync()
            except StoreUnavailable as exc:
                # Nothing can be decided before we know what the log holds: the batch
                # waited as long as a commit would, and is answered like a failed one.
                self.store_ok = False
                err = StoreDown(f"the action log is unavailable: {exc}", retry_after=2.0)
                for _, fut in items:
                    if not fut.done():
                        fut.set_exception(err)
                return
        now = max(self.clock(), engine.last_at)
        if now - self._last_expire > 10.0:
            engine.expire(now)
            self._last_expire = now
        pending = engine.new_pending()
        outcomes: list[LogRecord | Replay | Exception] = []
        for cmd, _ in items:
            try:
                outcomes.append(engine.decide(cmd, now, pending))
            except errors.Rejection as exc:
                outcomes.append(exc)
        records = pending.records
        if records:
            started = time.perf_counter()
            try:
                await self._commit(engine.batch(pending))
            except DuplicateAction as exc:
                if retried:
                    raise
                # Keys older than the memory window: learn them from the log, decide again.
                for r in await self.store.find_actions(exc.keys):
                    engine.remember(r)
                await self._process(items, retried=True)
                return
            except DuplicateProof as exc:
                if retried:
                    raise
                # The database's guard caught a spent proof memory had forgotten.
                for jti in exc.jtis:
                    engine.remember_proof(jti, self.clock() + 3600.0)
                await self._process(items, retried=True)
                return
            except StoreUnavailable as exc:
                self.store_ok = False
                err = StoreDown(f"the action log is unavailable: {exc}", retry_after=2.0)
                for (_, fut), out in zip(items, outcomes, strict=True):
                    if not fut.done():
                        fut.set_exception(out if isinstance(out, Exception) else err)
                return
            self.store_ok = True
            try:
                for r in records:
                    engine.apply(r)
            except Exception as exc:
                # Committed but not applied: memory no longer matches the log. Only a
                # restart, which rebuilds from the log, can make them agree again.
                raise StateDiverged("applying committed records failed") from exc
            elapsed = time.perf_counter() - started
            for observe in self.batch_observers:
                observe(len(records), elapsed)
        await self._reply(items, outcomes)
        if records:
            self._tell_listeners(records)

    async def _reply(
        self, items: list[_Item], outcomes: list[LogRecord | Replay | Exception]
    ) -> None:
        by_seq: dict[int, LogRecord] = {o.seq: o for o in outcomes if isinstance(o, LogRecord)}
        missing = [
            cmd.idempotency_key
            for (cmd, _), o in zip(items, outcomes, strict=True)
            if isinstance(o, Replay) and o.seq not in by_seq and cmd.idempotency_key
        ]
        old: dict[int, LogRecord] = {}
        lookup_error: Exception | None = None
        if missing:
            try:
                old = {r.seq: r for r in await self.store.find_actions(missing)}  # type: ignore[arg-type]
            except StoreUnavailable as exc:
                lookup_error = StoreDown(f"the action log is unavailable: {exc}", 2.0)
        result, unranked = self.engine.result, self._unranked
        for (_, fut), out in zip(items, outcomes, strict=True):
            if fut.done():
                continue
            if isinstance(out, Exception):
                fut.set_exception(out)
            elif isinstance(out, Replay):
                rec = by_seq.get(out.seq) or old.get(out.seq)
                if rec is None:
                    fut.set_exception(lookup_error or StoreDown("original action not found"))
                else:
                    fut.set_result(result(rec, replayed=True, ranked=fut not in unranked))
            else:
                fut.set_result(result(out, replayed=False, ranked=fut not in unranked))

    async def _commit(self, batch: CommitBatch) -> None:
        """Append, retrying with backoff until the batch's deadline (its oldest request
        queued `retry_seconds` ago); at least one attempt is always made."""
        deadline = self._deadline
        backoff = Backoff(RETRY_BASE, RETRY_CAP)
        while True:
            try:
                await self.store.append(batch)
                return
            except StoreUnavailable:
                self._suspect = True
                self.store_ok = False
                if time.monotonic() >= deadline:
                    raise
            # The last attempt falls on the deadline, so a blip shorter than
            # retry_seconds is ridden out.
            await backoff.wait(until=deadline)
            try:
                landed = await self.store.last_seq()
            except StoreUnavailable:
                continue
            self._suspect = False
            if landed >= batch.last_seq:
                # Probably the failed attempt committed: appending again returns once it
                # finds exactly this batch there, and refuses if other records are.
                try:
                    await self.store.append(batch)
                    return
                except StoreUnavailable:
                    if time.monotonic() >= deadline:
                        raise

    async def _resync(self) -> None:
        """After an unclear failure, apply whatever the log has beyond our state.

        Retried with backoff until the batch's deadline, like a commit, and within the
        same deadline: during an outage every write waits the same bounded time, and no
        write waits longer than `retry_seconds` plus the attempt under way.
        """
        deadline = self._deadline
        backoff = Backoff(RETRY_BASE, RETRY_CAP)
        while True:
            try:
                await self._apply_landed()
                return
            except StoreUnavailable:
                if time.monotonic() >= deadline:
                    raise
            await backoff.wait(until=deadline)

    async def _apply_landed(self) -> None:
        engine = self.engine
        landed = await self.store.last_seq()
        if landed > engine.last_seq:
            log.warning(
                "applying %d record(s) committed during a failure", landed - engine.last_seq
            )
            async for chunk in self.store.scan(after=engine.last_seq):
                for r in chunk:
                    engine.apply(r)
                self._tell_listeners(chunk)
        self._suspect = False
