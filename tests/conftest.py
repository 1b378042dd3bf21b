"""Fixtures for every test directory: a throwaway PostgreSQL database per run, a clean
schema per test, and a check that the event loop logged no unhandled exception."""

from __future__ import annotations

import asyncio
import gc
import inspect
import os
import secrets
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

DEFAULT_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
T = TypeVar("T")


def run_isolated(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion on its own loop in its own thread.

    Sync fixtures use this for their database chores so they never touch, or get
    confused with, the loop pytest-asyncio runs the test in.
    """
    result: list[T] = []
    error: list[BaseException] = []

    def target() -> None:
        async def main() -> T:
            return await make()

        try:
            result.append(asyncio.run(main()))
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=target, name="pg-admin")
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


def _with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def _admin_connect(dsn: str) -> asyncpg.Connection:
    return await asyncpg.connect(dsn, timeout=5, command_timeout=30)


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """The DSN of a database created for this test run and dropped after it."""
    admin_dsn = os.environ.get("SCOREBOARD_TEST_PG", DEFAULT_ADMIN_DSN)
    name = f"scoreboard_test_{os.getpid()}_{secrets.token_hex(4)}"

    async def create() -> None:
        conn = await _admin_connect(admin_dsn)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    try:
        run_isolated(create)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        parts = urlsplit(admin_dsn)  # named without its user and password
        where = f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path}"
        message = (
            f"PostgreSQL is unreachable at {where} ({exc!r}); "
            "start it or set SCOREBOARD_TEST_PG to an admin DSN"
        )
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)

    yield _with_database(admin_dsn, name)

    async def drop() -> None:
        conn = await _admin_connect(admin_dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    run_isolated(drop)


@pytest.fixture
def fresh_pg_dsn(pg_dsn: str) -> str:
    """The run database, emptied for this test.

    Sessions left over from an earlier test (a store it never closed) are ended first,
    and waited for, so no stale writer lock survives into this test.
    """

    async def reset() -> None:
        conn = await _admin_connect(pg_dsn)
        try:
            await conn.execute(
                "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        finally:
            await conn.close()

    run_isolated(reset)
    return pg_dsn


@pytest.fixture
async def loop_errors() -> AsyncIterator[list[dict[str, Any]]]:
    """Errors the running loop reported (unhandled task exceptions, failing callbacks);
    the test fails at teardown if there are any."""
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()

    def record(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        errors.append(context)
        loop.default_exception_handler(context)  # still logged, with its traceback

    loop.set_exception_handler(record)
    try:
        yield errors
        # "Task exception was never retrieved" is reported when the task is collected.
        # The two young generations hold this test's garbage and cost next to nothing
        # to collect; a full collection cost ~25 ms per test.
        gc.collect(1)
    finally:
        loop.set_exception_handler(previous)
    assert not errors, "the event loop logged unhandled exceptions: " + "; ".join(
        f"{e.get('message')} {e.get('exception')!r}" for e in errors
    )


@pytest.fixture(autouse=True)
def _check_loop_errors(request: pytest.FixtureRequest) -> None:
    # Only async tests have a loop to watch; sync tests stay loop-free.
    if inspect.iscoroutinefunction(getattr(request.node, "obj", None)):
        request.getfixturevalue("loop_errors")
