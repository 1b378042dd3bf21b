"""One process's part in a cluster on PostgreSQL: its role and what the role runs.

- writer: decides and appends (the service's `Writer`); unless `cluster.enabled` is
  false it also takes forwarded commands (`Intake`) and publishes where.
- follower: rebuilt from the log like recovery, then tails it (`Tail`); every read, live
  view and the page are served from its own engine; writes go to the writer
  (`Forwarder`). It never takes the writer lock and never appends.
- standby: a follower that also waits on the writer lock. Once it holds it (the writer's
  session ended), it stops tailing, applies the rest of the log and becomes the writer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from contextlib import AsyncExitStack
from functools import partial
from typing import Any

from prometheus_client import Gauge

from scoreboard.cluster.forward import Forwarder
from scoreboard.cluster.handshake import cluster_key
from scoreboard.cluster.intake import Intake
from scoreboard.cluster.progress import Progress
from scoreboard.cluster.tail import Listener, Tail
from scoreboard.core.commands import Command
from scoreboard.core.engine import Engine
from scoreboard.core.errors import Refused
from scoreboard.runtime.metrics import Metrics
from scoreboard.runtime.retry import Backoff
from scoreboard.runtime.watch import TaskWatch
from scoreboard.settings.model import Settings
from scoreboard.storage.base import StoreUnavailable
from scoreboard.storage.postgres.log import PostgresLog
from scoreboard.writer.actor import Result, Writer, WriterError

log = logging.getLogger("scoreboard.cluster")

TAIL_TASK = "log-tail"
FORWARD_TASK = "forwarder"
TAKEOVER_TASK = "takeover"
# How long a follower waits at start-up to know whether it can reach a writer, so that
# its first writes are either forwarded or refused at once, never left to time out.
FIRST_VERDICT_SECONDS = 5.0


class NotTheWriter(WriterError):
    """A request only the writer process takes reached a follower or standby."""

    code = "OVERLOADED"


class Node:
    def __init__(self, settings: Settings, store: PostgresLog, engine: Engine, writer: Writer,
                 listeners: Sequence[Listener], secret: bytes, metrics: Metrics,
                 progress: Progress) -> None:
        c = self.settings = settings.cluster
        self.role = settings.server.role
        self.store = store
        self.engine = engine
        self.writer = writer
        self.progress = progress  # already told of the writer's commits
        self.tail = Tail(store, engine, [*listeners, self.progress.on_commit],
                         poll_interval=c.poll_interval)
        key = cluster_key(secret)
        self.forwarder = Forwarder(store.writer_address, key, self.progress,
                                   self._rank_of, timeout=c.forward_timeout,
                                   batch=c.forward_batch, wait_applied=c.max_wait_seconds,
                                   linger=c.forward_linger)
        # Forwarded results go back unranked: the follower ranks them once applied.
        self.intake = Intake(partial(writer.submit_many, ranked=False), key,
                             c.internal_host, c.internal_port)
        self.is_writer = self.role == "writer"
        progress.patience = 0.0 if self.is_writer else c.max_wait_seconds
        self.took_over_seconds: float | None = None
        lag = Gauge("scoreboard_lag_seqs", "Seqs behind the writer (0 on the writer)",
                    registry=metrics.registry)
        lag.set_function(lambda: self.lag()[0])
        lag_s = Gauge("scoreboard_lag_seconds", "Seconds behind the writer (0 on the writer)",
                      registry=metrics.registry)
        lag_s.set_function(lambda: self.lag()[1])

    def _rank_of(self, board: str, user_id: str) -> int | None:
        ranking = self.engine.ranking(board)
        return None if ranking is None else ranking.rank(user_id)

    def submit(self, cmd: Command) -> Coroutine[Any, Any, Result]:
        """Decide here when this process is the writer, else forward to the writer: the
        one or the other's coroutine, handed on without a frame of its own to pass
        every action's wakeup through."""
        if self.is_writer:
            return self.writer.submit(cmd)
        return self.forwarder.submit(cmd)

    async def submit_many(self, cmds: Sequence[Command]) -> list[Result | Refused]:
        """Batches are decided where they land: only the writer takes them."""
        if self.is_writer:
            return await self.writer.submit_many(cmds)
        raise NotTheWriter("batches are taken by the writer process only; send them there",
                           retry_after=5.0)

    async def start(self, tasks: TaskWatch, stack: AsyncExitStack,
                    become_writer: Callable[[], None]) -> None:
        """Start what the role runs; each part's teardown goes on `stack`."""
        if self.is_writer:
            await self._serve_intake(stack)
            return
        tasks.start(TAIL_TASK, self.tail.run())
        stack.push_async_callback(tasks.stop, TAIL_TASK)
        tasks.start(FORWARD_TASK, self.forwarder.run())
        stack.push_async_callback(tasks.stop, FORWARD_TASK)
        try:
            await asyncio.wait_for(self.forwarder.settled.wait(), FIRST_VERDICT_SECONDS)
        except TimeoutError:
            log.warning("no word yet on whether a writer can be reached; serving anyway")
        if self.role == "standby":
            tasks.start(TAKEOVER_TASK, self._take_over(tasks, stack, become_writer))
            stack.push_async_callback(tasks.stop, TAKEOVER_TASK)

    async def _serve_intake(self, stack: AsyncExitStack) -> None:
        port = await self.intake.start()
        stack.push_async_callback(self.intake.stop)
        host = self.settings.advertise_host or self.settings.internal_host
        await self.store.publish_writer(f"ws://{host}:{port}/")
        log.info("taking forwarded writes on %s:%d", host, port)

    async def _take_over(self, tasks: TaskWatch, stack: AsyncExitStack,
                         become_writer: Callable[[], None]) -> None:
        await self.store.take_over()  # returns once the writer's lock session has ended
        started = time.perf_counter()
        log.warning("holding the writer lock: taking over as the writer")
        await tasks.stop(TAIL_TASK)
        backoff = Backoff(0.05, 0.5)
        while True:  # nobody else can append now: this catch-up is the last one needed
            try:
                await self.tail.catch_up()
                break
            except StoreUnavailable as exc:
                log.warning("catching up before taking over: %s", exc)
            await backoff.wait()
        self.is_writer = True
        self.progress.patience = 0.0
        become_writer()
        await self._serve_intake(stack)
        self.took_over_seconds = time.perf_counter() - started
        log.warning("took over as the writer at seq %d in %.3f s", self.engine.last_seq,
                    self.took_over_seconds)
        tasks.expect_end(TAKEOVER_TASK)

    # -- readiness -----------------------------------------------------------------------

    def lag(self) -> tuple[int, float]:
        return (0, 0.0) if self.is_writer else self.tail.lag()

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        seqs, seconds = self.lag()
        c = self.settings
        forwarder = self.forwarder
        ok = self.is_writer or (
            self.tail.store_ok and seqs <= c.max_lag_seqs and seconds <= c.max_lag_seconds
            and forwarder.unreachable is None
        )
        details: dict[str, Any] = {
            "role": "writer" if self.is_writer else self.role,
            "lagSeqs": seqs, "lagSeconds": round(seconds, 3),
        }
        if not self.is_writer:  # the state only: /ready is public, the address is not
            details["writer"] = forwarder.state
            if forwarder.unreachable is not None:
                details["writerProblem"] = forwarder.unreachable
        return ok, details
