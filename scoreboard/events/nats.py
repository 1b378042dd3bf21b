"""Publishing every committed record to NATS JetStream, exactly once and in order.

The publisher is one more consumer of the `EventFeed`, behind the commit: a score
action never waits for it and never fails because of it. Each record goes to
`<subject_prefix>.<board>.<kind>` with `Nats-Msg-Id: <seq>`, and the next is sent only
once JetStream has acknowledged the one before, so the stream holds the log's records
in log order.

Where to start is asked of the stream, never remembered here: on start-up and after
any failure (NATS down or restarted, an ack that did not come, this process killed)
the publisher reads the seq of the stream's last message and goes on after it. A
record whose ack was lost but which did land is therefore not sent again, and one that
did not land is; JetStream's duplicate window (the message id) is a second guard.

A NATS outage never ends the task: it reconnects with backoff while `/ready` and the
metrics show it disconnected and how far behind it is.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import nats
import orjson
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from prometheus_client import CollectorRegistry, Counter, Gauge

from scoreboard.core.records import LogRecord, kind_of
from scoreboard.events.feed import EventFeed
from scoreboard.events.wire import record_bytes
from scoreboard.runtime.retry import Backoff
from scoreboard.settings.events import NatsSettings

log = logging.getLogger("scoreboard.events.nats")

MSG_ID = "Nats-Msg-Id"
CHUNK = 500  # records read from the feed at a time
IDLE_CHECK = 5.0  # seconds between connection checks while nothing is new
RETRY_BASE, RETRY_CAP = 0.1, 5.0  # seconds between sessions


class PublishGap(Exception):
    """The stream's last message is not one of ours; resuming from it is impossible."""


class NatsPublisher:
    def __init__(self, settings: NatsSettings, feed: EventFeed,
                 registry: CollectorRegistry) -> None:
        self.settings = settings
        self.feed = feed
        self.connected = False
        self.published = 0  # the newest seq the stream has acknowledged
        self.last_error: str | None = None
        self._acked = asyncio.Event()  # replaced after every ack (see `wait_published`)
        Gauge("scoreboard_events_nats_lag", "Committed records not yet in the NATS stream",
              registry=registry).set_function(self.lag)
        Gauge("scoreboard_events_nats_connected", "1 while connected to NATS JetStream",
              registry=registry).set_function(lambda: int(self.connected))
        self._sent = Counter("scoreboard_events_nats_published_total",
                             "Records acknowledged by NATS JetStream", registry=registry)
        self._failures = Counter("scoreboard_events_nats_failures_total",
                                 "Publisher sessions that ended in an error", registry=registry)

    async def wait_published(self, seq: int) -> None:
        """Until the stream has acknowledged `seq` (cancel or time it out to give up)."""
        while self.published < seq:
            await self._acked.wait()

    def _progress(self, seq: int) -> None:
        self.published = seq
        acked, self._acked = self._acked, asyncio.Event()
        acked.set()

    def lag(self) -> int:
        return max(0, self.feed.head() - self.published)

    def details(self) -> dict[str, Any]:
        """For `/ready`: informative only; NATS down does not make the service unready."""
        return {"connected": self.connected, "publishedSeq": self.published,
                "lag": self.lag(), "error": self.last_error}

    def subject(self, r: LogRecord) -> str:
        return f"{self.settings.subject_prefix}.{r.board}.{kind_of(r)}"

    async def run(self) -> None:
        """Publish until cancelled; every failure is followed by a fresh session."""
        backoff = Backoff(RETRY_BASE, RETRY_CAP)
        while True:
            published = self.published
            try:
                await self._session()
            except Exception as exc:
                self._failures.inc()
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("NATS publishing interrupted, retrying: %s", self.last_error)
            finally:
                self.connected = False
            if self.published > published:
                backoff.reset()  # it made progress: the next failure starts the backoff anew
            await backoff.wait()  # before reconnecting

    async def _connect(self) -> Client:
        s = self.settings
        return await nats.connect(
            s.url, user_credentials=s.credentials or None, allow_reconnect=False,
            connect_timeout=max(1, round(s.ack_timeout)), max_reconnect_attempts=0,
            error_cb=self._on_error, name="scoreboard",
        )

    async def _on_error(self, exc: Exception) -> None:
        # The session notices a dead connection on its own; this only keeps the client
        # library from logging each error as if it were unhandled.
        log.debug("NATS client error: %s", exc)

    async def _session(self) -> None:
        nc = await self._connect()
        try:
            js = nc.jetstream(timeout=self.settings.ack_timeout)
            await self._ensure_stream(js)
            position = await self._resume_point(js)
            self._progress(position)
            self.connected = True
            self.last_error = None
            log.info("publishing to NATS stream %s after seq %d", self.settings.stream, position)
            await self._publish_from(nc, js, position)
        finally:
            try:
                await nc.close()
            except Exception:  # the connection is gone already
                log.debug("closing the NATS connection failed", exc_info=True)

    async def _publish_from(self, nc: Client, js: JetStreamContext, position: int) -> None:
        feed = self.feed
        stream = self.settings.stream
        while True:
            records = await feed.read(position, CHUNK)
            if not records:
                await feed.wait(position, IDLE_CHECK, closable=False)
                if nc.is_closed or not nc.is_connected:
                    raise ConnectionError("the NATS connection was lost")
                continue
            for r in records:
                await js.publish(self.subject(r), record_bytes(r), stream=stream,
                                 headers={MSG_ID: str(r.seq)})
                position = r.seq
                self._sent.inc()
                self._progress(position)

    async def _ensure_stream(self, js: JetStreamContext) -> None:
        s = self.settings
        try:
            await js.stream_info(s.stream)
        except NotFoundError:
            if not s.create_stream:
                raise
            await js.add_stream(name=s.stream, subjects=[f"{s.subject_prefix}.>"])
            log.info("created NATS stream %s for %s.>", s.stream, s.subject_prefix)

    async def _resume_point(self, js: JetStreamContext) -> int:
        """The seq of the newest record the stream holds (0 for an empty stream)."""
        info = await js.stream_info(self.settings.stream)
        if not info.state.last_seq or not info.state.messages:
            return 0
        msg = await js.get_msg(self.settings.stream, seq=info.state.last_seq)
        raw = (msg.headers or {}).get(MSG_ID)
        try:
            seq = int(raw if raw is not None else orjson.loads(msg.data or b"")["seq"])
        except (TypeError, ValueError, KeyError):
            raise PublishGap(
                f"the last message of stream {self.settings.stream} is not a record"
            ) from None
        if seq > self.feed.head():
            log.warning("the NATS stream is ahead of the log (seq %d > %d): it holds "
                        "records of another log; publishing resumes once the log passes it",
                        seq, self.feed.head())
        return seq
