"""Wiring: the one place that builds the parts and owns their lifetimes.

Nothing imports this module back. Start-up is a stack of paired setups, each pushing
its teardown, so shutdown (and a start-up that fails half way) unwinds in reverse:

    store (lock, schema)  → close the store
    recovery
    provider keys         → stop refreshing them (only with an identity provider)
    live (WebSocket port) → refuse new viewers, send the last top, close with 1001
    fan-out task          → stop it
    writer task           → drain: answer and commit everything queued
    HTTP listener         → stop listening, let in-flight requests finish

SIGTERM therefore stops listening first, lets requests in flight finish while the
writer still commits, drains the writer, tells live viewers the final top and closes
them, and closes the store last. The writer and the fan-out are watched: if either
dies, `/ready` answers 503, callers get an answer, and `serve` returns 1.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from scoreboard.auth.keyring import KeySetError
from scoreboard.auth.proofs import ProofAuthority
from scoreboard.auth.provider import FetchError, KeySource
from scoreboard.auth.tokens import (
    JWT_MODULE,
    Authenticator,
    SecretFileError,
    load_or_create_secret,
)
from scoreboard.cluster.progress import Progress
from scoreboard.core.engine import Engine
from scoreboard.core.recovery import Restore
from scoreboard.demo import run_demo
from scoreboard.edge.bearer import Bearer
from scoreboard.edge.clients import ClientAddress
from scoreboard.edge.connections import ConnectionBudget, client_budget, descriptor_limit
from scoreboard.edge.cors import Cors
from scoreboard.edge.envelope import RequestIds, Routes
from scoreboard.edge.ratelimit import RateLimiter
from scoreboard.events.feed import EventFeed
from scoreboard.graphql.context import Parts
from scoreboard.graphql.deferred import DeferredEndpoint
from scoreboard.http.admin import AdminApi
from scoreboard.http.batch import BatchApi
from scoreboard.http.boards import BoardsApi
from scoreboard.http.events import EventsApi
from scoreboard.http.listener import Edge, EdgeSite
from scoreboard.http.openapi import add_openapi_route
from scoreboard.http.probes import Probes
from scoreboard.http.public import Gatekeeper, PublicApi
from scoreboard.read.archive import PeriodReads
from scoreboard.read.privacy import pseudonym_key
from scoreboard.read.views import Views
from scoreboard.runtime.metrics import Metrics
from scoreboard.runtime.retry import Backoff
from scoreboard.runtime.watch import TaskWatch
from scoreboard.settings.model import Settings
from scoreboard.storage import gc_paused, is_postgres, open_store
from scoreboard.storage.base import ActionLog, StoreError, StoreUnavailable
from scoreboard.storage.snapshots import replay, restore_newest
from scoreboard.writer.actor import Submitter, Writer
from scoreboard.writer.archiver import Archiver
from scoreboard.writer.snapshots import Snapshotter
from scoreboard.ws.server import LiveServer

if TYPE_CHECKING:
    from scoreboard.cluster.node import Node
    from scoreboard.events.nats import NatsPublisher

log = logging.getLogger("scoreboard.app")

# The collector's thresholds once recovered. Python's default young generation (700
# objects) is made for short scripts: here each group in flight holds thousands of
# objects for a few milliseconds (commands, records, replies, futures), so with 700
# nearly all of them were traced, promoted, and counted towards full collections, each
# of which walks every ranking, name and key: 15-20% of the writer's CPU under trusted
# batches. With 20,000 most of them are freed before the young generation is traced
# at all; a young collection of that size takes about a millisecond. The middle
# generation is collected every 2 young ones (not 10): it then never holds more than
# about 40,000 objects, so its pauses stay those of the default (10 would let it
# grow to 200,000 while an archive allocates its rows: 26 ms pauses instead of 14).
GC_THRESHOLDS = (20_000, 2, 10)

PROOF_SECRET_FILE = "proof-secret"
WRITER_TASK = "writer"
HUB_TASK = "live-hub"
DEMO_TASK = "demo"
NATS_TASK = "nats-publisher"
KEYS_TASK = "provider-keys"
LOCK_TASK = "writer-lock"
SNAPSHOT_TASK = "snapshots"
ARCHIVE_TASK = "archiver"
GRAPHQL_TASK = "graphql"
IMPORTS_TASK = "imports"
LOCK_CHECK_SECONDS = 1.0
# Imported after the service listens, in a thread, rather than on the way to ready: a
# request that needs one sooner imports it itself (or waits for the thread's import).
LATER_IMPORTS = (JWT_MODULE,)


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
    live: LiveServer
    app: web.Application
    edge: Edge
    feed: EventFeed | None = None
    publisher: NatsPublisher | None = None  # with [events.nats] url set
    keys: KeySource | None = None  # an identity provider's published keys
    http_port: int = 0
    draining: bool = False  # set once stop() begins: answers then say Connection: close
    tasks: TaskWatch = field(default_factory=TaskWatch)
    _stack: AsyncExitStack | None = None
    _ready_checked: tuple[float, bool] = (0.0, False)
    node: Node | None = None  # PostgreSQL with several processes (SPEC §8)
    snapshots: Snapshotter | None = None
    archiver: Archiver | None = None
    progress: Progress | None = None  # how far this process has applied the log
    graphql: DeferredEndpoint | None = None  # with graphql.enabled

    @classmethod
    def build(cls, settings: Settings, store: ActionLog | None = None) -> Service:
        data_dir = settings.server.data_dir
        if store is None:
            store = open_store(
                settings.server.database_url, data_dir,
                # one attempt never outlasts the whole start-up wait
                connect_timeout=max(0.5, min(5.0, settings.server.connect_timeout)),
                follower=settings.server.role != "writer",
            )
        w = settings.writer

        def make_engine() -> Engine:
            return Engine(
                settings.rules,
                settings.board_definitions().values(),
                retention=w.idempotency_retention_seconds,
                max_keys=w.idempotency_max_keys,
                abuse=settings.abuse.limits(),
            )

        engine = make_engine()
        writer = Writer(
            engine, store, queue_size=w.queue_size, max_batch=w.max_batch,
            retry_seconds=w.retry_seconds, pipeline_depth=w.pipeline_depth,
        )
        metrics = Metrics()
        a = settings.auth
        keys = KeySource(a, metrics) if a.jwks_url or a.oidc_issuer else None
        log.info("data folder %s", data_dir.resolve())
        _warn_if_open(data_dir)
        try:
            jwt_secret = load_or_create_secret(a.jwt_secret, data_dir)
            proof_secret = load_or_create_secret(settings.proofs.secret, data_dir,
                                                 PROOF_SECRET_FILE)
        except SecretFileError as exc:
            raise StartupError(str(exc)) from None
        try:
            auth = Authenticator(a, jwt_secret, source=keys, revoked=engine.revocations())
        except KeySetError as exc:
            raise StartupError(f"auth.public_keys: {exc}") from None
        proofs = ProofAuthority(settings.proofs, proof_secret)
        views = Views(engine, top_size=settings.leaderboard.default_limit,
                      pseudonym_key=pseudonym_key(jwt_secret))
        bearer = Bearer(auth, metrics)
        ids = RequestIds()
        addresses = ClientAddress(settings.server.trusted_proxies)
        budget = ConnectionBudget(
            client_budget(descriptor_limit(), settings.edge.reserved_fds),
            settings.edge.max_connections_per_ip, addresses.trusted,
        )
        live = LiveServer(settings, bearer, views, metrics, ids, addresses=addresses,
                          budget=budget)

        snapshots = Snapshotter(engine, store, every_records=w.snapshot_every_records,
                                every_seconds=w.snapshot_seconds)
        writer.listeners.append(snapshots.on_commit)
        archiver = Archiver(engine, store, make_engine, retry_seconds=w.retry_seconds)
        writer.listeners.append(archiver.on_commit)
        writer.batch_observers.append(metrics.observe_batch)
        writer.listener_error_observers.append(lambda _exc: metrics.listener_failed())
        writer.listeners.append(live.hub.on_commit)
        writer.listeners.append(live.sessions.on_commit)
        feed = EventFeed(store, lambda: engine.last_seq,
                         buffer_records=settings.events.buffer_records)
        writer.listeners.append(feed.on_commit)
        progress = Progress(lambda: engine.last_seq)
        writer.listeners.append(progress.on_commit)
        node = None
        submitter: Submitter = writer
        if is_postgres(store) and (
            settings.server.role != "writer" or settings.cluster.enabled
        ):
            # Imported only when used: it brings a WebSocket client along.
            from scoreboard.cluster.node import Node

            secret = settings.cluster.secret.encode() or jwt_secret
            applied = [live.hub.on_commit, live.sessions.on_commit, feed.on_commit,
                       archiver.on_followed]
            node = Node(settings, store, engine, writer, applied, secret, metrics, progress)
            submitter = node
        metrics.bind_gauges(
            lambda: writer.queue_depth,
            engine.board_sizes,
        )

        # The largest body any route takes; each route enforces its own cap.
        limits = settings.limits
        app = web.Application(
            client_max_size=max(limits.max_body_bytes, limits.max_batch_body_bytes)
        )
        service = cls(settings=settings, store=store, engine=engine, writer=writer,
                      auth=auth, proofs=proofs, views=views, metrics=metrics, live=live,
                      app=app, edge=Edge(settings.edge, budget, metrics, ids), feed=feed,
                      node=node, keys=keys, snapshots=snapshots, archiver=archiver,
                      progress=progress)
        if settings.events.nats.url:
            # Imported only when used, as GraphQL below: every start pays for an import
            # (Strawberry's is a third of the service's), a restart included.
            from scoreboard.events.nats import NatsPublisher

            service.publisher = NatsPublisher(settings.events.nats, feed, metrics.registry)
        gate = Gatekeeper(
            settings, bearer,
            user_limiter=RateLimiter(settings.limits.user_per_minute),
            ip_limiter=RateLimiter(settings.limits.ip_per_minute),
            addresses=addresses,
            metrics=metrics,
        )
        routes = Routes(app, lambda: service.draining, ids, metrics=metrics,
                        client=addresses.of)
        archive = PeriodReads(store, views)
        public = PublicApi(gate, submitter, views, proofs, progress, archive)
        public.add_routes(routes)
        BatchApi(gate, submitter).add_routes(routes)
        EventsApi(gate, feed, live.sessions).add_routes(routes)
        live.add_routes(routes)
        if settings.graphql.enabled:  # its library is imported once the service listens
            service.graphql = DeferredEndpoint(Parts(public, live.gate, live.hub,
                                                     live.sessions))
            service.graphql.add_routes(routes)
        AdminApi(gate, submitter, engine, store, proofs).add_routes(routes)
        BoardsApi(gate, submitter, views, archive).add_routes(routes)
        Probes(service.readiness, metrics, gate.administrator).add_routes(routes)
        add_openapi_route(routes, settings)
        cors = Cors(settings.cors)
        cors.install(app)
        routes.finish(cors.preflight)
        return service

    # -- lifecycle -----------------------------------------------------------------------

    async def _open_store(self) -> None:
        timeout = self.settings.server.connect_timeout
        deadline = time.monotonic() + timeout
        backoff = Backoff(0.1, 2.0)
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
            # The last attempt falls on the deadline, so a database that comes back
            # within connect_timeout is always found.
            await backoff.wait(until=deadline)

    async def recover(self) -> float:
        """Rebuild the engine from the log; returns the seconds it took."""
        started = time.perf_counter()
        w = self.settings.writer
        horizon = time.time() - max(
            w.idempotency_retention_seconds, self.settings.rules.longest_window
        )
        with gc_paused():
            # The newest good snapshot and the log after it; without one, the rows.
            snapshot_seq = await restore_newest(self.store, self.engine)
            if snapshot_seq is None:
                restore = Restore(self.engine)
                await self.store.load(since=horizon, into=restore)
                counts = restore.score_rows, restore.recent_records, self.engine.last_seq
            else:
                replayed = await replay(self.store, self.engine)
                if self.snapshots is not None:
                    self.snapshots.saved_seq = snapshot_seq
        # Every role (writer, standby, follower) and both paths (snapshot restore or
        # rows) end here with millions of long-lived objects: move them out of the
        # collector's generations. Full collections over them were the main pause of a
        # period rollover (a 1M-user engine: 260-320 ms each while the archive
        # allocates its rows, docs/benchmarks.md); frozen objects are still freed by
        # reference counting, e.g. a closed period's ranking once archived.
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        elapsed = time.perf_counter() - started
        self.metrics.recovery_seconds.set(elapsed)
        if snapshot_seq is None:
            log.info("recovered %d users, %d recent records, last seq %d in %.3f s",
                     *counts, elapsed)
        else:
            log.info("recovered from the snapshot at seq %d and %d records after it, "
                     "last seq %d in %.3f s", snapshot_seq, replayed, self.engine.last_seq,
                     elapsed)
        return elapsed

    async def start(self) -> None:
        stack = AsyncExitStack()
        try:
            await self._open_store()
            stack.push_async_callback(self.store.close)
            await self.recover()
            if self.keys is not None:
                await self._open_keys(stack, self.keys)
            await self.live.start()  # before HTTP: the page shows the bound WebSocket port
            stack.push_async_callback(self.live.stop)
            self.tasks.start(HUB_TASK, self.live.hub.run())
            stack.push_async_callback(self.tasks.stop, HUB_TASK)
            if self.publisher is not None:  # behind the commit; stopped after the drain
                self.tasks.start(NATS_TASK, self.publisher.run())
                stack.push_async_callback(self.tasks.stop, NATS_TASK)
            if self.node is None or self.node.is_writer:
                self._start_writing()
            stack.push_async_callback(self._final_snapshot)  # after the drain, if a writer
            stack.push_async_callback(self.tasks.stop, ARCHIVE_TASK)  # after the drain too
            stack.push_async_callback(self._drain_writer)  # nothing to drain if never run
            stack.push_async_callback(self.tasks.stop, LOCK_TASK)  # nothing if never run
            if self.node is not None:
                await self.node.start(self.tasks, stack, self._become_writer)
            self.http_port = self.live.http_port = await self._listen(stack)
            self.tasks.start(IMPORTS_TASK, _import_and_hold(LATER_IMPORTS))
            stack.push_async_callback(self.tasks.stop, IMPORTS_TASK)
            if self.graphql is not None:  # after the listeners: ready does not wait for it
                self.tasks.start(GRAPHQL_TASK, _build_and_hold(self.graphql))
                stack.push_async_callback(self.tasks.stop, GRAPHQL_TASK)
        except BaseException:
            self.draining = True
            await stack.aclose()
            raise
        self._stack = stack
        log.info("serving HTTP on %s:%d, WebSocket on port %d",
                 self.settings.server.host, self.http_port, self.ws_port)

    async def _open_keys(self, stack: AsyncExitStack, keys: KeySource) -> None:
        """The first key set within `connect_timeout`, then a watched refresher that
        keeps the last good keys through provider outages."""
        stack.push_async_callback(keys.close)
        timeout = self.settings.server.connect_timeout
        try:
            await keys.open(timeout)
        except FetchError as exc:
            raise StartupError(
                f"the identity provider's keys are unavailable after {timeout:g} s: {exc}"
            ) from None
        self.tasks.start(KEYS_TASK, keys.run())
        stack.push_async_callback(self.tasks.stop, KEYS_TASK)

    async def _listen(self, stack: AsyncExitStack) -> int:
        runner = web.AppRunner(
            self.app, access_log=None, shutdown_timeout=self.settings.server.shutdown_grace,
        )
        await runner.setup()
        # cleanup: stop listening, wait for in-flight handlers
        stack.push_async_callback(runner.cleanup)
        # aiohttp's site, with deadlines, connection caps and JSON parser refusals
        site = EdgeSite(runner, self.settings.server.host, self.settings.server.http_port,
                        self.edge)
        await site.start()
        budget = self.edge.budget
        log.info("file descriptor limit %d: up to %d client connections, %s per address",
                 descriptor_limit(), budget.total, budget.per_ip or "no limit")
        if not site.port:
            raise StartupError("the HTTP listener has no address")
        return site.port

    def _become_writer(self) -> None:
        """A standby that took the lock over starts deciding and appending."""
        self._start_writing()

    def _start_writing(self) -> None:
        """The writer task; on PostgreSQL also a check of the lock every second, so a
        writer whose lock session was ended fences and exits (non-zero, as after a
        failed write) while idle, instead of on its next write."""
        self.tasks.start(WRITER_TASK, self.writer.run())
        if self.snapshots is not None:
            self.tasks.start(SNAPSHOT_TASK, self.snapshots.run())
        if self.archiver is not None:
            self.tasks.start(ARCHIVE_TASK, self.archiver.run())
        if is_postgres(self.store):
            self.tasks.start(LOCK_TASK, self.store.watch_lock(LOCK_CHECK_SECONDS))

    async def _drain_writer(self) -> None:
        self.tasks.expect_end(WRITER_TASK)
        self.writer.stop()
        await self.tasks.join(WRITER_TASK)

    async def _final_snapshot(self) -> None:
        """A clean shutdown of a writer leaves a snapshot of its last seq; one whose
        writer died does not (its state may not be the log's)."""
        snapshots = self.snapshots
        if snapshots is None or self.tasks.task(SNAPSHOT_TASK) is None:
            return
        self.tasks.expect_end(SNAPSHOT_TASK)
        snapshots.stop()
        await self.tasks.join(SNAPSHOT_TASK)
        if not self.tasks.failed:
            await snapshots.final()

    @property
    def ws_port(self) -> int:
        """The bound WebSocket port (0 until started)."""
        return self.live.ws_port

    async def stop(self) -> None:
        """Graceful: in-flight requests are answered, queued writes committed."""
        self.draining = True
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()

    async def run_until(self, stop: asyncio.Event, *, demo: bool = False) -> int:
        """Run until `stop` is set (0) or a watched task dies (1); then shut down."""
        if demo:
            self.tasks.start(DEMO_TASK, run_demo(self.writer, self.settings.rules))
        await _first(stop, self.tasks.crashed)
        crashed = self.tasks.crashed.is_set()
        if crashed:
            log.error("shutting down: %s failed", ", ".join(self.tasks.failed))
        else:
            log.info("shutting down")
        await self.tasks.stop(DEMO_TASK)
        await self.stop()
        log.info("stopped")
        return 1 if crashed else 0

    # -- readiness -----------------------------------------------------------------------

    async def _store_ok(self) -> bool:
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

    async def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Ready means: started, not draining (a load balancer should stop sending), no
        watched task dead, and the store reachable."""
        started = self._stack is not None and not self.draining
        tasks_ok = not self.tasks.failed
        store_ok = started and await self._store_ok()
        details = {
            "store": "ok" if store_ok else "unavailable",
            "lastSeq": self.engine.last_seq,
            "tasks": self.tasks.states(),
        }
        if self.publisher is not None:  # informative: NATS down does not make us unready
            details["nats"] = self.publisher.details()
        if self.keys is not None:  # stale keys still serve: said here, not a 503
            details["keys"] = self.keys.status()
        cluster_ok = True
        if self.node is not None:
            cluster_ok, details["cluster"] = self.node.readiness()
        return started and tasks_ok and store_ok and cluster_ok, details


def _warn_if_open(data_dir: Path) -> None:
    """A data folder the service did not create keeps its mode (it may be shared on
    purpose), but a group- or world-readable one is said at start-up: it holds the
    secrets. The files themselves are created owner-only either way."""
    try:
        mode = data_dir.stat().st_mode & 0o777
    except OSError:
        return  # not there yet: it is created 0700
    if mode & 0o077:
        log.warning("data folder %s is readable by others (mode %o); it holds the "
                    "secrets: chmod 700 it", data_dir.resolve(), mode)


async def serve(settings: Settings, *, demo: bool = False) -> int:
    """Serve until SIGTERM/SIGINT (exit 0) or until a watched task dies (exit 1)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        service = Service.build(settings)
        await service.start()
    except (StartupError, StoreError, OSError) as exc:
        log.error("cannot start: %s", exc)
        print(f"cannot start: {exc}", file=sys.stderr)
        return 1
    print(f"Scoreboard serving http://{settings.server.host}:{service.http_port}/",
          file=sys.stderr, flush=True)
    return await service.run_until(stop, demo=demo)


async def _import_and_hold(modules: tuple[str, ...]) -> None:
    """Import `modules` in a thread, so the loop keeps answering meanwhile, then stay
    until stopped: an import that fails is a watched task's crash (`/ready` 503, exit
    1), as a failed start was."""
    await asyncio.to_thread(_import_all, modules)
    await asyncio.Event().wait()


def _import_all(modules: tuple[str, ...]) -> None:
    for name in modules:
        import_module(name)


async def _build_and_hold(graphql: DeferredEndpoint) -> None:
    """Build the GraphQL endpoint, then stay until stopped: a build that fails is a
    watched task's crash (`/ready` 503, exit 1), as a failed start was. Stopping it
    leaves a build under way to the requests that wait for it."""
    await graphql.endpoint()
    await asyncio.Event().wait()


async def _first(*events: asyncio.Event) -> None:
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
