"""One writer and its intakes in this process, over real loopback WebSockets.

The writer is the real `Writer` and `Engine` over the memory log (the helpers of
`tests/writer`); each intake hands its frames to that writer through `Units`, which
records every unit (one per frame) and can hold them, the way a slow writer would.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from functools import partial
from typing import Any

import pytest

from scoreboard.cluster.forward import Forwarder
from scoreboard.cluster.handshake import cluster_key
from scoreboard.cluster.intake import Intake, SubmitMany
from scoreboard.cluster.progress import Progress
from scoreboard.core.commands import Command
from scoreboard.core.errors import Refused
from scoreboard.storage.memory import MemoryLog
from scoreboard.writer.actor import Result
from tests.writer.test_writer import Running

HOST = "127.0.0.1"
SECRET = b"the cluster secret of these tests"
KEY = cluster_key(SECRET)
LIMIT = 10.0  # a safety net for every wait: none of them should come near it


class Units:
    """The writer's `submit_many` as an intake calls it: one unit per frame."""

    def __init__(self, submit_many: SubmitMany) -> None:
        self._submit_many = submit_many
        self.sizes: list[int] = []  # commands per unit, in arrival order
        self._open = asyncio.Event()
        self._open.set()
        self._arrived = asyncio.Condition()

    def hold(self) -> None:
        """Units arriving from now on wait (the writer is slow or gone)."""
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    async def __call__(self, cmds: Sequence[Command]) -> list[Result | Refused]:
        async with self._arrived:
            self.sizes.append(len(cmds))
            self._arrived.notify_all()
        await self._open.wait()
        return await self._submit_many(cmds)

    async def arrived(self, units: int) -> None:
        """Until `units` units have reached the writer side."""
        async with self._arrived:
            await asyncio.wait_for(
                self._arrived.wait_for(lambda: len(self.sizes) >= units), LIMIT
            )


class Cluster:
    """A writer, the intakes in front of it, and forwarders reaching the newest intake."""

    def __init__(self, writer: Running) -> None:
        self.writer = writer
        self.engine = writer.engine
        self.store = writer.store
        self.progress = Progress(lambda: writer.engine.last_seq)
        writer.writer.listeners.append(self.progress.on_commit)
        self.url: str | None = None  # where `locate` says the writer is
        self.intakes: list[tuple[Intake, Units]] = []
        self._tasks: list[asyncio.Task[None]] = []

    async def locate(self) -> str | None:
        return self.url

    def rank_of(self, board: str, user_id: str) -> int | None:
        """The rank a follower reads here (it shares the writer's engine)."""
        return self.engine.boards[board].rank(user_id)

    async def intake(self, key: bytes = KEY, **options: Any) -> tuple[Intake, Units]:
        """A started intake on an OS-chosen port, from now on the one `locate` names."""
        units = Units(partial(self.writer.writer.submit_many, ranked=False))  # as a writer
        intake = Intake(units, key, HOST, 0, **options)
        port = await intake.start()
        self.intakes.append((intake, units))
        self.url = f"ws://{HOST}:{port}/"
        return intake, units

    def forwarder(self, *, key: bytes = KEY, progress: Progress | None = None,
                  timeout: float = LIMIT, batch: int = 256, wait_applied: float = LIMIT,
                  max_waiting: int = 10_000, frames_in_flight: int = 2,
                  linger: float = 0.0) -> Forwarder:
        """A forwarder with its connection task running (ended at teardown)."""
        fwd = Forwarder(self.locate, key, progress or self.progress, self.rank_of,
                        timeout=timeout, batch=batch, wait_applied=wait_applied,
                        max_waiting=max_waiting, frames_in_flight=frames_in_flight,
                        linger=linger)
        self._tasks.append(asyncio.create_task(fwd.run()))
        return fwd

    async def close(self) -> None:
        for _, units in self.intakes:
            units.release()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for intake, _ in self.intakes:
            await asyncio.wait_for(intake.stop(), LIMIT)
        await self.writer.stop()


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    running = Running(MemoryLog())
    await running.start()
    c = Cluster(running)
    try:
        yield c
    finally:
        await c.close()


class Heard(logging.Handler):
    """Counts log records containing `text` on a logger; `times(n)` waits for n of them."""

    def __init__(self, logger: str, text: str) -> None:
        super().__init__(logging.DEBUG)
        self.text = text
        self.count = 0
        self._changed = asyncio.Event()
        self._logger = logging.getLogger(logger)

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.count += 1
            self._changed.set()

    async def times(self, n: int) -> None:
        async def reached() -> None:
            while self.count < n:
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(reached(), LIMIT)

    def __enter__(self) -> Heard:
        self._logger.addHandler(self)
        return self

    def __exit__(self, *_: object) -> None:
        self._logger.removeHandler(self)
