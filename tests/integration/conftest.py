"""Real servers on 127.0.0.1 with OS-chosen ports, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from scoreboard.app import Service
from scoreboard.settings.model import Settings, load_settings

SECRET = "integration-test-secret-0123456789abcdef"
POLL_LIMIT = 10.0
PROOF_SECRET = "integration-proof-secret-0123456789abcdef"


def make_settings(data_dir: Path, database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "server.http_port": 0,
        "server.ws_port": 0,
        "server.data_dir": str(data_dir),
        "server.database_url": database_url,
        "server.shutdown_grace": 5.0,
        "server.connect_timeout": 5.0,
        "auth.jwt_secret": SECRET,
        "proofs.secret": PROOF_SECRET,
        "limits.user_per_minute": 100_000,
        "limits.ip_per_minute": 1_000_000,
        "writer.retry_seconds": 1.0,
    }
    values.update(overrides)
    return load_settings(values, environ={})


@dataclass
class Running:
    """One started service and what a test needs to talk to it."""

    settings: Settings
    service: Service
    http: aiohttp.ClientSession
    _stopped: bool = field(default=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.service.http_port}"

    def token(self, sub: str, name: str | None = None, scopes: tuple[str, ...] = (),
              ttl: float | None = None) -> str:
        return self.service.auth.mint(sub, name=name, scopes=scopes, ttl=ttl)

    def headers(self, sub: str, name: str | None = None, **kw: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(sub, name, **kw)}"}

    async def act(self, sub: str, action: str = "COMPLETE_LEVEL", cid: str | None = None,
                  **body: Any) -> tuple[int, Any]:
        payload = {"actionType": action, "clientActionId": cid or f"{sub}-{id(body)}-{action}"}
        payload.update(body)
        async with self.http.post(f"{self.url}/api/v1/scores/actions", json=payload,
                                  headers=self.headers(sub, sub.title())) as r:
            return r.status, await r.json()

    async def get(self, path: str, **kw: Any) -> tuple[int, Any]:
        async with self.http.get(f"{self.url}{path}", **kw) as r:
            return r.status, await r.json()

    async def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            await self.service.stop()


ServerFactory = Callable[..., Awaitable[Running]]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db' / 'scoreboard.db'}"
    dsn: str = request.getfixturevalue("fresh_pg_dsn")
    return dsn


@pytest.fixture
async def start_server(
    tmp_path: Path, database_url: str
) -> AsyncIterator[ServerFactory]:
    """Start a service (again) on the same data: `await start_server(**setting_overrides)`."""
    running: list[Running] = []
    session = aiohttp.ClientSession()

    async def factory(**overrides: Any) -> Running:
        settings = make_settings(tmp_path / "data", database_url, **overrides)
        service = Service.build(settings)
        await service.start()
        r = Running(settings, service, session)
        running.append(r)
        return r

    yield factory
    for r in reversed(running):
        await r.stop()
    await session.close()


@pytest.fixture
async def server(start_server: ServerFactory) -> Running:
    return await start_server()


async def wait_for(condition: Callable[[], bool], within: float = POLL_LIMIT) -> float:
    """Poll a condition the service offers no event for (descriptors, counts), with a
    deadline; returns the seconds it took."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < within, "condition not reached in time"
        await asyncio.sleep(0.01)
    return time.monotonic() - started


def open_fds() -> int:
    """File descriptors this process holds (the in-process service's included)."""
    return len(os.listdir("/proc/self/fd"))
