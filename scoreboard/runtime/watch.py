"""Long-lived tasks with an owner who notices when one dies.

Each task is started under a name. Its owner ends it on purpose with `stop` (or lets
it return after asking it to); any other end — an exception, a cancellation from
elsewhere, an early return — is a crash: logged, listed in `failed`, and announced by
`crashed`, so readiness turns 503 and the process exits non-zero for its supervisor
to restart it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger("scoreboard.tasks")

RECANCEL_SECONDS = 1.0


class TaskWatch:
    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._ending: set[str] = set()
        self.failed: list[str] = []
        self.crashed = asyncio.Event()

    def start(self, name: str, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro, name=name)
        self._tasks[name] = task
        task.add_done_callback(self._ended)
        return task

    def task(self, name: str) -> asyncio.Task[None] | None:
        return self._tasks.get(name)

    def states(self) -> dict[str, str]:
        """Each watched task: running, stopped (on purpose) or failed."""
        out = {}
        for name, task in self._tasks.items():
            if not task.done():
                out[name] = "running"
            else:
                out[name] = "failed" if name in self.failed else "stopped"
        return out

    def _ended(self, task: asyncio.Task[None]) -> None:
        name = task.get_name()
        if name in self._ending:
            if not task.cancelled() and task.exception() is not None:
                log.error("task %s failed while stopping", name, exc_info=task.exception())
            return
        if task.cancelled():
            log.error("task %s was cancelled by someone other than its owner", name)
        elif task.exception() is not None:
            log.error("task %s crashed", name, exc_info=task.exception())
        else:
            log.error("task %s ended on its own", name)
        self.failed.append(name)
        self.crashed.set()

    def expect_end(self, name: str) -> None:
        """The owner is about to make `name` end (e.g. asked it to drain)."""
        self._ending.add(name)

    async def join(self, name: str) -> None:
        """Wait for a task the owner asked to end by itself."""
        self._ending.add(name)
        task = self._tasks.get(name)
        if task is not None:
            await asyncio.wait({task})

    async def stop(self, name: str) -> None:
        """Cancel a task and wait for it."""
        self._ending.add(name)
        task = self._tasks.get(name)
        # Cancelled again until it ends: a library can swallow one cancellation (on
        # Python 3.11 `wait_for` loses it when its inner future completes at the same
        # moment), and a loop that never sees it would hold shutdown up for good.
        while task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=RECANCEL_SECONDS)
