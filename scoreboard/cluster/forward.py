"""A follower's side of forwarding: commands to the current writer, in batches.

One persistent internal WebSocket to wherever the writer published it can be reached
(looked up again after every lost connection, so it follows a new writer after a
takeover). Commands waiting when the sender wakes go out in one frame, and at most
`frames_in_flight` frames (one by default) wait for their answer at a time: what arrives
meanwhile gathers into the next frame, so frames grow with the load by themselves and
the writer decides and commits larger units. Its cost is mostly per frame and per
commit (a commit is one round trip to PostgreSQL), not per command: with two frames in
flight the writer's commits carried about 12 commands and cost 0.37 of a direct HTTP
action per command; with one, about 18 and 0.32 (`bench.cluster`, phase b). The price
is at most one writer round trip of added wait.

Under load a frame also lingers, at most `linger` (5 ms), until as many commands wait
as there were callers when the last answer came: the ones it answered, who come back a
moment later, and the ones already waiting. A frame that waits for them carries more:
in phase b, waiting for as many as the last frame carried gave about 28 commands
instead of 19 (the writer's CPU per forwarded action went from 0.48-0.51 of a direct
one to 0.35-0.45, alternating runs), and counting the waiting callers too lets a frame
carry all of them instead of alternating between two halves. A lone caller never
waits: the answer it got was the only one, and nobody else waited.

A command sent on a connection that broke before its answer came has an unknown fate:
it is sent again on the next connection when it has an idempotency key (the writer then
answers the original result, never applying it twice), and refused with 503 otherwise.

The caller is answered once this process has applied the result's seq itself, so it
reads its own write here (bounded by `wait_applied`). The writer sends results without
a rank (a ranking lookup per command is a tenth of what a forwarded action costs it with
a million users): the rank is this process's, read once the seq is applied here, and
null if it was not applied in time.

When the last attempt to reach a writer failed (none published, no answer, our key
refused), a new command is refused at once with 503 `STORE_UNAVAILABLE`, the reason in
its message, instead of waiting `timeout` for nothing: the part that commits is out of
reach, as when the database is (a retry helps once a writer is back), not busy. The
connection itself is authenticated by `scoreboard.cluster.handshake`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from scoreboard.cluster import handshake
from scoreboard.cluster.progress import Progress
from scoreboard.cluster.wire import WireError, decode_results, encode_commands
from scoreboard.core.commands import ActionResult, Command
from scoreboard.core.errors import InvalidCommand, Refused
from scoreboard.runtime.retry import Backoff
from scoreboard.storage.base import StoreUnavailable
from scoreboard.writer.actor import Overloaded, Result, StoreDown

log = logging.getLogger("scoreboard.cluster")

Locate = Callable[[], Awaitable[str | None]]
RankOf = Callable[[str, str], int | None]  # (board, user) → rank here, None if unranked
RETRY_BASE, RETRY_CAP = 0.05, 0.5  # seconds between looking the writer up again
LINGER = 0.005  # seconds a frame may wait for as many commands as the last one carried

# Why no writer can be reached, as callers and `/ready` are told: never an address.
NONE_PUBLISHED = "no writer has published where it takes forwarded writes"
LOOKUP_FAILED = "the writer cannot be looked up: the database is unavailable"
NO_ANSWER = "the writer does not answer on its internal port"
REFUSED = ("the writer refused this process's cluster key (is cluster.secret the same "
           "on every process?)")
STOPPED = "this process has stopped forwarding writes"
# The database is out: writes wait for it (bounded), as on any store outage.
_WORTH_WAITING = (None, LOOKUP_FAILED)


class HandshakeRefused(Exception):
    """The writer closed the connection at the handshake: our answer was wrong."""


@dataclass(slots=True)
class _Waiting:
    cmd: Command
    fut: asyncio.Future[Result | Refused]
    sent: bool = False


class Forwarder:
    def __init__(self, locate: Locate, key: bytes, progress: Progress, rank_of: RankOf,
                 *, timeout: float, batch: int, wait_applied: float,
                 max_waiting: int = 10_000, frames_in_flight: int = 1,
                 linger: float = LINGER) -> None:
        self.locate = locate
        self.key = key
        self.progress = progress
        self.rank_of = rank_of
        self.timeout = timeout
        self.batch = batch
        self.wait_applied = wait_applied
        self.max_waiting = max_waiting
        self.frames_in_flight = frames_in_flight
        self.linger = linger
        self._callers = 0  # answered by the last frame plus waiting when it came back
        self._unanswered = 0  # frames sent on this connection and not yet answered
        self.writer_url: str | None = None  # while connected (and welcomed)
        # Why the last attempt to reach a writer failed; None while connected, and
        # before the first attempt or the next one after a connection ended.
        self.unreachable: str | None = None
        self.settled = asyncio.Event()  # set by the first verdict: connected, or why not
        self._ids = itertools.count(1)
        self._waiting: dict[int, _Waiting] = {}
        self._unsent: deque[int] = deque()
        self._wake = asyncio.Event()

    @property
    def state(self) -> str:
        """connected, unreachable, or connecting (no verdict yet)."""
        if self.writer_url is not None:
            return "connected"
        return "connecting" if self.unreachable is None else "unreachable"

    # -- the caller's side ---------------------------------------------------------------

    async def submit(self, cmd: Command) -> Result:
        if self.writer_url is None and self.unreachable not in _WORTH_WAITING:
            # Known to have nowhere to go: say so now rather than after `timeout`.
            raise StoreDown(f"no writer is reachable to forward this action to: "
                            f"{self.unreachable}", retry_after=1.0, for_clients=True)
        if len(self._waiting) >= self.max_waiting:
            raise Overloaded("too many commands are waiting for the writer", retry_after=1.0)
        i = next(self._ids)
        fut: asyncio.Future[Result | Refused] = asyncio.get_running_loop().create_future()
        self._waiting[i] = _Waiting(cmd, fut)
        self._unsent.append(i)
        self._wake.set()
        try:
            answer = await asyncio.wait_for(fut, self.timeout)
        except TimeoutError:
            raise StoreDown("the writer did not answer in time", retry_after=2.0,
                            for_clients=True) from None
        finally:
            self._waiting.pop(i, None)
        if isinstance(answer, Refused):
            raise answer
        applied = await self.progress.wait(answer.seq, self.wait_applied)
        if applied and isinstance(answer, ActionResult):
            answer = replace(answer, rank=self.rank_of(answer.board, answer.user_id))
        return answer

    # -- the connection ------------------------------------------------------------------

    async def run(self) -> None:
        """Keep one connection to the current writer; owned by the service's task watch,
        which treats any end but its own cancellation as a crash. However it ends,
        nobody is left waiting for it."""
        try:
            await self._keep_connected()
        finally:
            self.writer_url = None
            self.unreachable = STOPPED
            self._answer_all(StoreDown(STOPPED, retry_after=2.0))

    async def _keep_connected(self) -> None:
        backoff = Backoff(RETRY_BASE, RETRY_CAP)
        while True:
            url = await self._locate()
            if url is not None:
                try:
                    async with connect(url, open_timeout=2.0, close_timeout=1.0,
                                       ping_interval=5.0, ping_timeout=10.0, compression=None,
                                       max_size=16 * 1024 * 1024,
                                       logger=handshake.SOCKET_LOG) as ws:
                        await self._authenticate(ws)
                        backoff.reset()
                        self.writer_url, self.unreachable = url, None
                        self.settled.set()
                        log.info("forwarding writes to %s", url)
                        await self._session(ws)
                except HandshakeRefused:
                    self._cannot_reach(REFUSED, url)
                except (OSError, TimeoutError, ConnectionClosed, InvalidHandshake, InvalidURI,
                        WireError, handshake.HandshakeError) as exc:
                    if self.writer_url is None:  # never got through
                        self._cannot_reach(NO_ANSWER, url, exc)
                    else:
                        log.warning("the connection to the writer at %s ended: %r", url, exc)
                finally:
                    self.writer_url = None
                    self._requeue()
            await backoff.wait()  # before looking the writer up again

    async def _locate(self) -> str | None:
        try:
            url = await self.locate()
        except StoreUnavailable as exc:
            self._cannot_reach(LOOKUP_FAILED, None, exc)
            return None
        if url is None:
            self._cannot_reach(NONE_PUBLISHED, None)
        return url

    def _cannot_reach(self, reason: str, url: str | None,
                      exc: BaseException | None = None) -> None:
        """Noted for callers and `/ready`; logged when the reason changes, with the
        address (logs are for operators; answers to clients never carry it)."""
        if reason != self.unreachable:
            where = "" if url is None else f" ({url})"
            cause = "" if exc is None else f": {exc!r}"
            log.warning("cannot forward writes: %s%s%s", reason, where, cause)
        self.unreachable = reason
        self.settled.set()

    async def _authenticate(self, ws: ClientConnection) -> None:
        """Answer the writer's challenge; returns once welcomed."""
        seconds = handshake.HANDSHAKE_SECONDS
        try:
            nonce = handshake.read_challenge(await asyncio.wait_for(ws.recv(), seconds))
            await ws.send(handshake.answer(self.key, nonce))
            welcome = await asyncio.wait_for(ws.recv(), seconds)
        except ConnectionClosed as exc:
            if exc.rcvd is not None and exc.rcvd.code == handshake.REFUSED_CODE:
                raise HandshakeRefused() from None
            raise
        if not handshake.is_welcome(welcome):
            raise handshake.HandshakeError("the writer did not welcome this process")

    def _answer_all(self, answer: Refused) -> None:
        for w in self._waiting.values():
            if not w.fut.done():
                w.fut.set_result(answer)

    def _requeue(self) -> None:
        """The connection is gone: resend what can be resent safely, refuse the rest."""
        for i, w in list(self._waiting.items()):
            if not w.sent or w.fut.done():
                continue
            if w.cmd.idempotency_key is None:
                w.fut.set_result(StoreDown("the writer went away; the change may or may "
                                           "not have been made", retry_after=1.0))
            else:
                w.sent = False
                self._unsent.append(i)
        self._wake.set()

    async def _session(self, ws: ClientConnection) -> None:
        """Send and receive until the connection ends. Either side's end ends both: a
        connection error goes back to `run` (which reconnects), anything else is a
        crash of this task, never a sender that died unseen."""
        self._unanswered = self._callers = 0
        sender = asyncio.ensure_future(self._send(ws))
        receiver = asyncio.ensure_future(self._receive(ws))
        try:
            done, _ = await asyncio.wait({sender, receiver},
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            sender.cancel()
            receiver.cancel()
            await asyncio.gather(sender, receiver, return_exceptions=True)
        for task in done:
            task.result()  # raises what ended it

    async def _receive(self, ws: ClientConnection) -> None:
        async for frame in ws:
            self._unanswered -= 1  # the writer answers every frame with one frame
            self._wake.set()
            answered = 0
            for i, answer in decode_results(frame):
                answered += 1
                w = self._waiting.get(i)
                if w is not None and not w.fut.done():
                    w.fut.set_result(answer)
            self._callers = min(self.batch, answered + len(self._unsent))

    async def _send(self, ws: ClientConnection) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._unsent and self._unanswered < self.frames_in_flight:
                if len(self._unsent) < self._callers:
                    await self._gather()
                items: list[tuple[int, Command]] = []
                while self._unsent and len(items) < self.batch:
                    i = self._unsent.popleft()
                    w = self._waiting.get(i)
                    if w is not None and not w.sent and not w.fut.done():
                        w.sent = True
                        items.append((i, w.cmd))
                if not items:
                    continue
                frame, refused = encode_commands(items)
                for i, err in refused:  # each alone; the others go out
                    log.error("a command cannot be forwarded: %s", err)
                    self._waiting[i].fut.set_result(InvalidCommand(
                        f"this command cannot be forwarded to the writer: {err}"))
                if frame is not None:
                    self._unanswered += 1
                    await ws.send(frame)

    async def _gather(self) -> None:
        """Wait, at most `linger`, until as many commands wait as there were callers
        when the last answer came (each arrival wakes the sender)."""
        loop = asyncio.get_running_loop()
        until = loop.time() + self.linger
        while len(self._unsent) < self._callers and (left := until - loop.time()) > 0:
            self._wake.clear()
            try:
                async with asyncio.timeout(left):
                    await self._wake.wait()
            except TimeoutError:
                return
