"""Owned tasks, seen from outside: a crashed writer or fan-out makes `/ready` answer
503, callers get an answer instead of waiting, and the serving loop ends with exit
code 1 (so a supervisor restarts the process); a failing commit listener changes no
caller's answer."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from scoreboard.app import (
    ARCHIVE_TASK,
    GRAPHQL_TASK,
    HUB_TASK,
    IMPORTS_TASK,
    LOCK_TASK,
    SNAPSHOT_TASK,
    WRITER_TASK,
)
from scoreboard.core.records import LogRecord
from scoreboard.storage import PostgresLog
from tests.integration.conftest import Running


async def test_a_raising_commit_listener_keeps_the_callers_200(server: Running) -> None:
    def broken(records: Sequence[LogRecord]) -> None:
        raise RuntimeError("a listener bug")

    server.service.writer.listeners.insert(0, broken)
    status, body = await server.act("amy", cid="a1")
    assert status == 200 and body["newScore"] == 10 and not body["replayed"]
    # committed exactly once: the repeat is a replay (which commits, and tells, nothing)
    status, again = await server.act("amy", cid="a1")
    assert status == 200 and again["replayed"] and again["seq"] == body["seq"]
    async with server.http.get(f"{server.url}/metrics") as r:
        text = await r.text()
    assert "scoreboard_commit_listener_failures_total 1.0" in text
    status, ready = await server.get("/ready")
    running = {HUB_TASK: "running", WRITER_TASK: "running", SNAPSHOT_TASK: "running",
               ARCHIVE_TASK: "running", GRAPHQL_TASK: "running",
               IMPORTS_TASK: "running"}
    if isinstance(server.service.store, PostgresLog):  # the writer also checks its lock
        running[LOCK_TASK] = "running"
    assert status == 200 and ready["tasks"] == running


@pytest.mark.parametrize("task", [WRITER_TASK, HUB_TASK])
async def test_a_crashed_task_fails_readiness_and_the_exit_code(server: Running,
                                                                task: str) -> None:
    service = server.service
    status, _ = await server.get("/ready")
    assert status == 200
    crashed = service.tasks.task(task)
    assert crashed is not None
    crashed.cancel()  # as if the task had died: nobody who owns it asked it to end
    await asyncio.wait_for(service.tasks.crashed.wait(), 5)
    status, ready = await server.get("/ready")
    assert status == 503 and ready["tasks"][task] == "failed"
    if task == WRITER_TASK:
        status, body = await server.act("bo", cid="b1")
        assert status == 503 and body["error"]["code"] == "OVERLOADED"
    # The serving loop sees the crash (not a signal), shuts down and reports failure.
    stop = asyncio.Event()  # never set
    assert await asyncio.wait_for(service.run_until(stop), 10) == 1
    assert service.draining
    server._stopped = True


async def test_stopping_a_task_that_swallowed_its_cancellation_still_ends_it() -> None:
    from scoreboard.runtime.watch import TaskWatch

    swallowed = asyncio.Event()
    forever = asyncio.Event()  # never set

    async def stubborn() -> None:
        try:
            await forever.wait()
        except asyncio.CancelledError:
            swallowed.set()  # as a library racing a timeout against the cancel may do
        await forever.wait()  # ... and goes on waiting

    watch = TaskWatch()
    task = watch.start("stubborn", stubborn())
    await asyncio.sleep(0)  # one step: it is waiting
    await asyncio.wait_for(watch.stop("stubborn"), 5)
    assert swallowed.is_set() and task.cancelled() and not watch.failed
