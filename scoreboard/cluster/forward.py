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

A command sent on a connection that broke before its answer came has an unknown fate:
it is sent again on the next connection when it has an idempotency key (the writer then
answers the original result, never applying it twice), and refused with 503 otherwise.

The caller is answered once this process has applied the result's seq itself, so it
reads its own write here (bounded by `wait_applied`). The writer sends results without
a rank (a ranking lookup per command is a tenth of what a forwarded action costs it with
a million users): the rank is this process's, read once the seq is applied here, and
null if it was not applied in time.
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

from scoreboard.cluster.progress import Progress
from scoreboard.cluster.wire import AUTH_HEADER, WireError, decode_results, encode_commands
from scoreboard.core.commands import ActionResult, Command
from scoreboard.core.errors import Refused
from scoreboard.runtime.retry import Backoff
from scoreboard.storage.base import StoreUnavailable
from scoreboard.writer.actor import Overloaded, Result, StoreDown

log = logging.getLogger("scoreboard.cluster")

Locate = Callable[[], Awaitable[str | None]]
RankOf = Callable[[str, str], int | None]  # (board, user) → rank here, None if unranked
RETRY_BASE, RETRY_CAP = 0.05, 0.5  # seconds between looking the writer up again


@dataclass(slots=True)
class _Waiting:
    cmd: Command
    fut: asyncio.Future[Result | Refused]
    sent: bool = False


class Forwarder:
    def __init__(self, locate: Locate, credential: str, progress: Progress, rank_of: RankOf,
                 *, timeout: float, batch: int, wait_applied: float,
                 max_waiting: int = 10_000, frames_in_flight: int = 1) -> None:
        self.locate = locate
        self.credential = credential
        self.progress = progress
        self.rank_of = rank_of
        self.timeout = timeout
        self.batch = batch
        self.wait_applied = wait_applied
        self.max_waiting = max_waiting
        self.frames_in_flight = frames_in_flight
        self._unanswered = 0  # frames sent on this connection and not yet answered
        self.writer_url: str | None = None  # while connected
        self._ids = itertools.count(1)
        self._waiting: dict[int, _Waiting] = {}
        self._unsent: deque[int] = deque()
        self._wake = asyncio.Event()

    # -- the caller's side ---------------------------------------------------------------

    async def submit(self, cmd: Command) -> Result:
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
            raise StoreDown("the writer did not answer in time", retry_after=2.0) from None
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
        """Keep one connection to the current writer; owned by the service."""
        backoff = Backoff(RETRY_BASE, RETRY_CAP)
        while True:
            url = None
            try:
                url = await self.locate()
            except StoreUnavailable as exc:
                log.warning("cannot look up the writer: %s", exc)
            if url is not None:
                try:
                    async with connect(url, additional_headers={AUTH_HEADER: self.credential},
                                       open_timeout=2.0, close_timeout=1.0, ping_interval=5.0,
                                       ping_timeout=10.0, compression=None,
                                       max_size=16 * 1024 * 1024) as ws:
                        backoff.reset()
                        self.writer_url = url
                        log.info("forwarding writes to %s", url)
                        await self._session(ws)
                except (OSError, TimeoutError, ConnectionClosed, InvalidHandshake, InvalidURI,
                        WireError) as exc:
                    log.warning("the connection to the writer at %s ended: %r", url, exc)
                finally:
                    self.writer_url = None
                    self._requeue()
            await backoff.wait()  # before looking the writer up again

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
        self._unanswered = 0
        sender = asyncio.ensure_future(self._send(ws))
        try:
            async for frame in ws:
                self._unanswered -= 1  # the writer answers every frame with one frame
                self._wake.set()
                for i, answer in decode_results(frame):
                    w = self._waiting.get(i)
                    if w is not None and not w.fut.done():
                        w.fut.set_result(answer)
        finally:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)

    async def _send(self, ws: ClientConnection) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._unsent and self._unanswered < self.frames_in_flight:
                items: list[tuple[int, Command]] = []
                while self._unsent and len(items) < self.batch:
                    i = self._unsent.popleft()
                    w = self._waiting.get(i)
                    if w is not None and not w.sent and not w.fut.done():
                        w.sent = True
                        items.append((i, w.cmd))
                if items:
                    self._unanswered += 1
                    await ws.send(encode_commands(items))
