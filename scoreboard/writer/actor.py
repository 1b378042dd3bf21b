"""The writer actor: the only code that changes the engine.

Requests wait in a bounded queue as (command, reply future), or as a unit of several
(`submit_many`: a trusted backend's batch), which is never split: it is decided in order
within one group and committed in one transaction. The actor takes everything waiting
(up to `max_batch`; a unit may pass it), decides each command against committed state
plus what is decided but not yet committed, appends the group to the log in one
transaction, and only then applies it to the engine, tells the listeners and replies.
Readers therefore never see an uncommitted effect.

Commits are pipelined: while one group commits, the next (up to `pipeline_depth`
groups in all) is decided on top of it. Commits run one at a time and in order, and a
group is answered only after its own commit, hence after every earlier one; the next
commit is sent before the group just committed is applied and answered, so that the
database and this process work at the same time. When a commit fails, the groups
decided on top of it are put back and decided again, so the outcome is what deciding
one group at a time would give.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import replace

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
from scoreboard.writer.groups import Group, Item, Unit, record_in

__all__ = [
    "Overloaded", "Result", "ShuttingDown", "StateDiverged", "StoreDown", "Submitter",
    "Writer", "WriterError", "WriterStopped",
]

log = logging.getLogger("scoreboard.writer.actor")

CommitListener = Callable[[Sequence[LogRecord]], None]
RETRY_BASE, RETRY_CAP = 0.02, 0.5  # seconds between attempts at a commit


_GONE: tuple[None, None] = (None, None)  # no copy of the key in flight


class Writer:
    def __init__(
        self,
        engine: Engine,
        store: ActionLog,
        *,
        queue_size: int = 10_000,
        max_batch: int = 512,
        retry_seconds: float = 5.0,
        pipeline_depth: int = 2,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.store = store
        self.max_batch = max_batch
        self.retry_seconds = retry_seconds
        if pipeline_depth < 1:
            raise ValueError("pipeline_depth must be >= 1")
        # Groups decided but not yet committed and answered, at most: 1 decides the
        # next group only once the previous one is committed.
        self.pipeline_depth = pipeline_depth
        self.clock = clock
        # Told of every committed batch after its callers are answered; a listener that
        # raises is logged and reported to `listener_error_observers`, nothing more.
        self.listeners: list[CommitListener] = []
        self.listener_error_observers: list[Callable[[BaseException], None]] = []
        self.batch_observers: list[Callable[[int, float], None]] = []
        # Unbounded as a queue, bounded in commands: a unit counts by its size.
        self._waiting: deque[Item | Unit] = deque()
        self._wake = asyncio.Event()  # set when something is queued, or on stop()
        self._woken: asyncio.Future[None] | None = None  # `_until`'s, resolved by `_kick`
        self._queue_size = queue_size
        self._queued = 0
        self._inflight: dict[tuple[str, str], tuple[Command, asyncio.Future[Result]]] = {}
        # Futures of units whose callers rank the results themselves (`ranked=False`).
        self._unranked: set[asyncio.Future[Result]] = set()
        self._closing = False
        self._stopped = False  # run() has ended: nothing will answer new commands
        # The loop run() runs on, where callers' futures are made: asking for the
        # running loop costs a getpid() system call each time (CPython 3.11 checks
        # for a fork), once per action.
        self._running: asyncio.AbstractEventLoop | None = None
        # Decided groups, oldest first: the first is committing, the others wait for it.
        self._groups: deque[Group] = deque()
        # When each waiting request was queued: a batch retries only until its oldest
        # request has waited retry_seconds, so a request queued behind a retrying batch
        # never waits a second full retry_seconds of its own.
        self._queued_at: dict[asyncio.Future[Result], float] = {}
        self._decided_at = 0.0  # the `at` of the latest group decided: never goes back
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
        fut: asyncio.Future[Result] = (self._running or asyncio.get_running_loop()).create_future()
        self._admit(1)  # again: the wait for an in-flight copy may have been long
        self._waiting.append((cmd, fut))
        self._kick()
        self._queued += 1
        self._queued_at[fut] = time.monotonic()
        inflight = self._inflight
        if key is not None:
            inflight[key] = (cmd, fut)
        # Not shielded: if this caller is cancelled the future is too, and the actor
        # skips answering it (the change itself still commits if it was decided).
        # Cleaned up here rather than by callbacks on the future, each of which the
        # loop would schedule and run apart for every action. An answer set just before
        # this caller is cancelled is still taken: the task's wakeup reads it first.
        try:
            return await fut
        finally:
            # A copy queued since this one was given up keeps its own entry.
            if key is not None and inflight.get(key, _GONE)[1] is fut:
                del inflight[key]

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
        create = (self._running or asyncio.get_running_loop()).create_future
        unit: Unit = [(cmd, create()) for cmd in cmds]
        if not ranked:
            self._unranked.update(fut for _, fut in unit)
        self._waiting.append(unit)
        self._kick()
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
        self._kick()  # wake the loop

    # -- the actor's side ----------------------------------------------------------------

    async def run(self) -> None:
        """Take batches until `stop()`; owned by the service, which treats any other
        end of this task as a crash. However it ends, nobody is left waiting."""
        self._running = asyncio.get_running_loop()
        try:
            await self._loop()
        finally:
            self._running = None
            self._stopped = True
            for group in self._groups:
                if group.commit is not None:
                    group.commit.cancel()
            self._fail_waiting(WriterStopped("the writer has stopped", 2.0))

    async def _loop(self) -> None:
        """Decide groups while the pipeline has room; finish the oldest (apply, reply,
        tell) when its commit ends. Commits run one at a time, in order."""
        waiting, groups, wake = self._waiting, self._groups, self._wake
        while True:
            if (waiting or (not groups and self._rollover_due())) \
                    and len(groups) < self.pipeline_depth:
                group = self._take()
                if self._suspect and not groups and not await self._resynced(group):
                    continue
                try:
                    self._decide(group)
                except Exception as exc:  # never leave a caller waiting forever
                    log.exception("writer batch failed")
                    self._fail(group, StoreDown(f"write failed: {exc}"))
                    continue
                groups.append(group)
                if len(groups) == 1:
                    self._start_commit(group)
                continue
            if groups:
                head = groups[0]
                assert head.commit is not None
                await self._until(head.commit, len(groups) < self.pipeline_depth)
                if head.commit.done():
                    await self._finish(head)
                continue
            if self._closing:
                return
            wake.clear()
            await self._idle(wake)

    async def _until(self, commit: asyncio.Task[float], woken: bool) -> None:
        """Until `commit` ends or, if `woken`, `_kick`: one future, not asyncio.wait's."""
        w = (self._running or asyncio.get_running_loop()).create_future()
        self._woken = w if woken else None
        commit.add_done_callback(lambda _: None if w.done() else w.set_result(None))
        await w  # a done `w` left behind (in `_woken`, or the commit's callback) stays so

    def _kick(self) -> None:
        self._wake.set()  # something was queued, or stop(): wake the loop, idle or not
        if (woken := self._woken) is not None and not woken.done():
            woken.set_result(None)

    async def _idle(self, wake: asyncio.Event) -> None:
        """Wait for work, or until the earliest period ends (a group of no commands
        then closes it: periods close live, not at the next request)."""
        ends = self.engine.next_rollover()
        if ends is None:
            await wake.wait()
            return
        # Capped, so a clock set forward is noticed within a minute.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), min(ends - self.clock(), 60.0))

    def _rollover_due(self) -> bool:
        ends = self.engine.next_rollover()
        return ends is not None and self.clock() >= ends

    def _take(self) -> Group:
        """Everything waiting, up to `max_batch` (a unit may pass it, never split)."""
        waiting = self._waiting
        entries: list[Item | Unit] = []
        items: list[Item] = []
        while waiting and (not items or len(items) < self.max_batch):
            entry = waiting.popleft()
            entries.append(entry)
            if isinstance(entry, list):
                items.extend(entry)
            else:
                items.append(entry)
        self._queued -= len(items)
        queued_at, now = self._queued_at, time.monotonic()
        oldest = min([queued_at.get(fut, now) for _, fut in items], default=now)
        return Group(entries, items, oldest + self.retry_seconds)

    def _put_back(self, groups: Sequence[Group]) -> None:
        """Groups decided on top of one whose commit failed: to be decided again, first."""
        for group in reversed(groups):
            self._waiting.extendleft(reversed(group.entries))
            self._queued += len(group.items)

    async def _resynced(self, group: Group) -> bool:
        """Before deciding after an unclear failure: learn what the log holds. False
        when it cannot be read (the group is answered like a failed commit)."""
        try:
            await self._resync(group.deadline)
        except StoreUnavailable as exc:
            # The group waited as long as a commit would, and is answered like one.
            self.store_ok = False
            self._fail(group, StoreDown(f"the action log is unavailable: {exc}", 2.0))
            return False
        return True

    def _decide(self, group: Group) -> None:
        """Decide the group on the committed state plus the groups still in flight."""
        engine, groups = self.engine, self._groups
        now = max(self.clock(), engine.last_at, self._decided_at)
        self._decided_at = now
        if now - self._last_expire > 10.0:
            engine.expire(now)
            self._last_expire = now
        pending = engine.new_pending(groups[-1].pending if groups else None)
        engine.roll(now, pending)  # periods the clock passed close before anything counts
        outcomes: list[LogRecord | Replay | Exception] = []
        for cmd, _ in group.items:
            try:
                outcomes.append(engine.decide(cmd, now, pending))
            except errors.Rejection as exc:
                outcomes.append(exc)
        group.pending, group.outcomes = pending, outcomes
        if groups:  # replays of records that groups still in flight decided
            for out in outcomes:
                if isinstance(out, Replay) and (rec := record_in(groups, out.seq)):
                    group.earlier[out.seq] = rec

    def _start_commit(self, group: Group) -> None:
        group.commit = asyncio.ensure_future(self._commit_group(group))

    async def _commit_group(self, group: Group) -> float:
        """Commit the group's records, if any; the seconds it took."""
        assert group.pending is not None
        if not group.pending.records:
            return 0.0
        started = time.perf_counter()
        await self._commit(self.engine.batch(group.pending), group.deadline)
        return time.perf_counter() - started

    async def _finish(self, head: Group) -> None:
        """The oldest group's commit ended: make it visible and answer it, or, if it
        failed, answer it so and put the groups decided on top of it back to wait."""
        groups = self._groups
        assert head.commit is not None and head.pending is not None
        try:
            elapsed = head.commit.result()
        except (StateDiverged, WriterFenced):
            raise  # fatal: a restart rebuilds from the log
        except Exception as exc:
            groups.popleft()
            self._put_back(list(groups))
            groups.clear()
            await self._failed(head, exc)
            return
        if len(groups) > 1:
            # The next commit starts now, and reaches the database (one turn of the loop
            # runs its task up to the statement sent) before this group is applied and
            # answered: the database works on it while this process does.
            self._start_commit(groups[1])
            await asyncio.sleep(0)
        groups.popleft()
        records = head.pending.records
        if records:
            self.store_ok = True
            engine = self.engine
            try:
                engine.apply_group(records, head.pending)
                engine.settle()
            except Exception as exc:
                # Committed but not applied: memory no longer matches the log. Only a
                # restart, which rebuilds from the log, can make them agree again.
                raise StateDiverged("applying committed records failed") from exc
            for observe in self.batch_observers:
                observe(len(records), elapsed)
        if groups:
            assert groups[0].pending is not None
            groups[0].pending.detach()  # what it saw pending is committed state now
        await self._reply(head)
        if records:
            self._tell_listeners(records)

    async def _failed(self, head: Group, exc: Exception) -> None:
        """The head's commit failed (nothing decided after it is left in flight)."""
        outcomes = head.outcomes
        try:
            if isinstance(exc, DuplicateAction | DuplicateProof) and not head.retried:
                if isinstance(exc, DuplicateAction):
                    # Keys older than the memory window: learn them from the log, and
                    # every other key of the group too, so that learning one does not
                    # push out another the group needs.
                    keys = [*exc.keys, *(k for c, _ in head.items if (k := c.idempotency_key))]
                    for r in await self.store.find_actions(keys):
                        self.engine.remember(r)
                else:  # the database's guard caught a spent proof memory had forgotten
                    for jti in exc.jtis:
                        self.engine.remember_proof(jti, self.clock() + 3600.0)
                head.retried = True
                head.earlier.clear()
                self._decide(head)  # again, on the committed state
                self._groups.append(head)
                self._start_commit(head)
                return
            if not isinstance(exc, StoreUnavailable):
                raise exc
        except StoreUnavailable as down:
            exc = down
        except Exception as other:  # never leave a caller waiting forever
            log.exception("writer batch failed", exc_info=other)
            self._fail(head, StoreDown(f"write failed: {other}"))
            return
        self.store_ok = False
        err = StoreDown(f"the action log is unavailable: {exc}", retry_after=2.0)
        for (_, fut), out in zip(head.items, outcomes, strict=True):
            if not fut.done():
                fut.set_exception(out if isinstance(out, Exception) else err)
        self._forget(head)

    def _fail(self, group: Group, err: WriterError) -> None:
        for _, fut in group.items:
            if not fut.done():
                fut.set_exception(err)
        self._forget(group)

    def _forget(self, group: Group) -> None:
        queued_at = self._queued_at
        for _, fut in group.items:
            queued_at.pop(fut, None)

    def _fail_waiting(self, err: WriterError) -> None:
        waiting = [item for group in self._groups for item in group.items]
        for entry in self._waiting:
            waiting.extend(entry if isinstance(entry, list) else (entry,))
        self._waiting.clear()
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

    async def _reply(self, group: Group) -> None:
        """Answer each caller in order; the answers are made together (`results`)."""
        items, outcomes = group.items, group.outcomes
        self._forget(group)
        records = group.pending.records if group.pending is not None else []
        own = records[0].seq if records else 1 << 62  # a replay of seq >= own is in `records`
        known = dict(group.earlier)  # the records before, of groups in flight, then the log's
        missing = [cmd.idempotency_key for (cmd, _), o in zip(items, outcomes, strict=True)
                   if isinstance(o, Replay) and o.seq < own and o.seq not in known]
        lookup_error: Exception | None = None
        if missing:
            try:
                known.update((r.seq, r) for r in await self.store.find_actions(missing))  # type: ignore[arg-type]
            except StoreUnavailable as exc:
                lookup_error = StoreDown(f"the action log is unavailable: {exc}", 2.0)
        unranked = self._unranked
        given: list[tuple[asyncio.Future[Result], LogRecord | Exception]] = []  # in order
        answered: list[LogRecord] = []  # the records answered, their flags beside
        replayed: list[bool] = []
        ranked: list[bool] = []
        for (_, fut), out in zip(items, outcomes, strict=True):
            if fut.done():
                continue
            if again := isinstance(out, Replay):
                rec = records[out.seq - own] if out.seq >= own else known.get(out.seq)
                out = rec or lookup_error or StoreDown("original action not found")
            given.append((fut, out))
            if not isinstance(out, Exception):
                answered.append(out)
                replayed.append(again)
                ranked.append(fut not in unranked)
        results = iter(self.engine.results(answered, replayed, ranked))
        for fut, out in given:
            if isinstance(out, Exception):
                fut.set_exception(out)
            else:
                fut.set_result(next(results))

    async def _commit(self, batch: CommitBatch, deadline: float) -> None:
        """Append, retrying with backoff until the batch's deadline (its oldest request
        queued `retry_seconds` ago); at least one attempt is always made."""
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

    async def _resync(self, deadline: float) -> None:
        """After an unclear failure, apply whatever the log has beyond our state.

        Retried with backoff until the batch's deadline, like a commit, and within the
        same deadline: during an outage every write waits the same bounded time, and no
        write waits longer than `retry_seconds` plus the attempt under way.
        """
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
                engine.settle()
                self._tell_listeners(chunk)
        self._suspect = False
