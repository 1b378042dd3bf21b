"""Wiring: the one place that builds the parts and owns their lifetimes.

Start-up order: storage (lock, schema) → recovery → writer → HTTP listener.
Shutdown order (SIGTERM): stop listening → let in-flight requests finish while the
writer still commits → drain and stop the writer → close live sockets → close storage.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from dataclasses import dataclass, field

from aiohttp import web

from scoreboard.actor import Writer
from scoreboard.admin import add_admin_routes
from scoreboard.api import Api, Routes, add_routes
from scoreboard.auth import Authenticator, load_or_create_secret
from scoreboard.core.engine import Engine
from scoreboard.core.recovery import Restore
from scoreboard.live import LiveServer
from scoreboard.metrics import CONTENT_TYPE_LATEST, Metrics
from scoreboard.openapi import add_openapi_route
from scoreboard.proofs import ProofAuthority
from scoreboard.ratelimit import RateLimiter
from scoreboard.settings import Settings
from scoreboard.storage import gc_paused, open_store
from scoreboard.storage.base import ActionLog, StoreUnavailable
from scoreboard.views import Views

log = logging.getLogger("scoreboard.service")

PROOF_SECRET_FILE = "proof-secret"


class StartupError(Exception):
    """The service cannot start; the message says why."""


@dataclass
class Service:
    settings: Settings
    store: ActionLog
    engine: Engine
    writer: Writer
    auth: Authenticator
    proofs: ProofAuthority
    views: Views
    metrics: Metrics
    user_limiter: RateLimiter
    ip_limiter: RateLimiter
    http_port: int = 0
    _runner: web.AppRunner | None = None
    _writer_task: asyncio.Task[None] | None = None
    _ready_checked: tuple[float, bool] = (0.0, False)
    _started: bool = False
    draining: bool = False  # set once stop() begins: answers then say Connection: close
    app: web.Application = field(init=False)
    live: LiveServer = field(init=False)

    @classmethod
    def build(cls, settings: Settings, store: ActionLog | None = None) -> Service:
        data_dir = settings.server.data_dir
        if store is None:
            store = open_store(
                settings.server.database_url, data_dir,
                # one attempt never outlasts the whole start-up wait
                connect_timeout=max(0.5, min(5.0, settings.server.connect_timeout)),
            )
        w = settings.writer
        engine = Engine(
            settings.rules,
            settings.leaderboard.boards,
            retention=w.idempotency_retention_seconds,
            max_keys=w.idempotency_max_keys,
            abuse=settings.abuse,
        )
        writer = Writer(
            engine, store, queue_size=w.queue_size, max_batch=w.max_batch,
            retry_seconds=w.retry_seconds,
        )
        secret = load_or_create_secret(settings.auth.jwt_secret, data_dir)
        proof_secret = load_or_create_secret(settings.proofs.secret, data_dir, PROOF_SECRET_FILE)
        service = cls(
            settings=settings,
            store=store,
            engine=engine,
            writer=writer,
            auth=Authenticator(settings.auth, secret),
            proofs=ProofAuthority(settings.proofs, proof_secret),
            views=Views(engine, top_size=settings.leaderboard.default_limit),
            metrics=Metrics(),
            user_limiter=RateLimiter(settings.limits.user_per_minute),
            ip_limiter=RateLimiter(settings.limits.ip_per_minute),
        )
        writer.batch_observers.append(service.metrics.observe_batch)
        service.live = LiveServer(settings, service.auth, service.views, service.metrics)
        writer.listeners.append(service.live.hub.on_commit)
        service.metrics.bind_gauges(
            lambda: writer.queue_depth,
            lambda: {name: len(b) for name, b in engine.boards.items()},
        )
        service.app = service._make_app()
        return service

    def _make_app(self) -> web.Application:
        app = web.Application(client_max_size=self.settings.limits.max_body_bytes)
        api = Api(self)
        routes = Routes(app, lambda: self.draining)
        add_routes(routes, api)
        self.live.add_routes(routes)
        add_admin_routes(routes, api)
        routes.add_get("/metrics", self._metrics)
        add_openapi_route(routes, self.settings)
        routes.finish()
        return app

    async def _metrics(self, request: web.Request) -> web.Response:
        body = self.metrics.render()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    # -- lifecycle -----------------------------------------------------------------------

    async def _open_store(self) -> None:
        timeout = self.settings.server.connect_timeout
        deadline = time.monotonic() + timeout
        delay = 0.1
        while True:
            try:
                await self.store.open()
                return
            except StoreUnavailable as exc:
                if time.monotonic() >= deadline:
                    raise StartupError(
                        f"the database is unreachable after {timeout:g} s: {exc}"
                    ) from None
                log.warning("database unreachable, retrying: %s", exc)
            # Backoff between attempts; the last one falls on the deadline, so a database
            # that comes back within connect_timeout is always found.
            await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 2.0)

    async def recover(self) -> float:
        """Rebuild the engine from the log; returns the seconds it took."""
        started = time.perf_counter()
        w = self.settings.writer
        horizon = time.time() - max(
            w.idempotency_retention_seconds, self.settings.rules.longest_window
        )
        with gc_paused():
            restore = Restore(self.engine)
            await self.store.load(since=horizon, into=restore)
            counts = restore.score_rows, restore.recent_records, self.engine.last_seq
        # Millions of long-lived objects now exist; keep later collections from
        # rescanning them all (a full pass over 1M users would stall the loop).
        gc.freeze()
        elapsed = time.perf_counter() - started
        self.metrics.recovery_seconds.set(elapsed)
        log.info("recovered %d users, %d recent records, last seq %d in %.3f s",
                 *counts, elapsed)
        return elapsed

    async def start(self) -> None:
        await self._open_store()
        try:
            await self.recover()
            self._writer_task = asyncio.create_task(self.writer.run(), name="writer")
            await self.live.start()  # before HTTP: the page shows the bound WebSocket port
            self._runner = web.AppRunner(
                self.app, access_log=None, shutdown_timeout=self.settings.server.shutdown_grace,
            )
            await self._runner.setup()
            site = web.TCPSite(self._runner, self.settings.server.host,
                               self.settings.server.http_port, reuse_address=True)
            await site.start()
        except BaseException:
            await self.stop()
            raise
        server = site._server
        assert server is not None and server.sockets  # type: ignore[attr-defined]
        self.http_port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self._started = True
        log.info("serving HTTP on %s:%d, WebSocket on port %d",
                 self.settings.server.host, self.http_port, self.ws_port)

    @property
    def ws_port(self) -> int:
        """The bound WebSocket port (0 until started)."""
        return self.live.ws_port

    async def stop(self) -> None:
        """Graceful: in-flight requests are answered, queued writes committed."""
        self.draining = True
        if self._runner is not None:
            await self._runner.cleanup()  # stops listening, waits for in-flight handlers
            self._runner = None
        if self._writer_task is not None:
            self.writer.stop()
            try:
                await self._writer_task
            except Exception:
                log.exception("writer stopped with an error")
            self._writer_task = None
        await self.live.stop()  # WebSockets close with 1001 once the last commits went out
        await self.store.close()
        self._started = False

    async def is_ready(self) -> bool:
        if not self._started or self.draining:  # a load balancer should stop sending
            return False
        now = time.monotonic()
        checked_at, ok = self._ready_checked
        if now - checked_at < 1.0:
            return ok
        try:
            ok = await asyncio.wait_for(self.store.ping(), 2.0)
        except (StoreUnavailable, TimeoutError):
            ok = False
        self._ready_checked = (now, ok)
        return ok
