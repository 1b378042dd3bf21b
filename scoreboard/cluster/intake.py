"""The writer's side of forwarding: one internal WebSocket server taking command frames.

A connection first answers a challenge (`scoreboard.cluster.handshake`): one that
answers wrongly, or not in time, is closed before any command reaches the writer.
Then each frame's commands are submitted to the writer as one unit (`submit_many`: one
queue entry, decided in order within one batch and committed together, as one trusted
batch is) and answered in one frame, each command with its own result or refusal.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from scoreboard.cluster import handshake
from scoreboard.cluster.wire import WireError, decode_commands, encode_results
from scoreboard.core.commands import Command
from scoreboard.core.errors import InvalidCommand, Refused
from scoreboard.writer.actor import Result

log = logging.getLogger("scoreboard.cluster")

SubmitMany = Callable[[Sequence[Command]], Awaitable[list[Result | Refused]]]


class Intake:
    def __init__(self, submit_many: SubmitMany, key: bytes, host: str, port: int, *,
                 frames_in_flight: int = 64, max_frame_bytes: int = 16 * 1024 * 1024,
                 nonce: Callable[[int], bytes] = secrets.token_bytes,
                 handshake_seconds: float = handshake.HANDSHAKE_SECONDS) -> None:
        self.submit_many = submit_many
        self.key = key
        self.host = host
        self.port = port
        self.frames_in_flight = frames_in_flight
        self.max_frame_bytes = max_frame_bytes
        self.nonce = nonce
        self.handshake_seconds = handshake_seconds
        self._server: Server | None = None

    async def start(self) -> int:
        """Listen; returns the bound port."""
        self._server = await serve(
            self._handle, self.host, self.port, max_size=self.max_frame_bytes,
            close_timeout=1.0, ping_interval=5.0, ping_timeout=10.0,
            compression=None,  # loopback or a LAN: deflate costs CPU
            logger=handshake.SOCKET_LOG,
        )
        for sock in self._server.sockets:
            return int(sock.getsockname()[1])
        raise OSError("the internal listener has no address")

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()

    async def _admit(self, ws: ServerConnection) -> bool:
        """The challenge; True once the peer answered it rightly and was welcomed."""
        nonce = self.nonce(handshake.NONCE_BYTES)
        protocol = ws.protocol
        limit = protocol.max_message_size
        protocol.max_message_size = handshake.HANDSHAKE_MAX_BYTES  # nobody yet: no 16 MiB
        try:
            await ws.send(handshake.challenge(nonce))
            reply = await asyncio.wait_for(ws.recv(), self.handshake_seconds)
        except TimeoutError:
            log.warning("refused an internal connection from %s: no answer to the "
                        "challenge in time", ws.remote_address)
            await ws.close(handshake.REFUSED_CODE, "no answer in time")
            return False
        finally:
            protocol.max_message_size = limit
        if not handshake.verify(self.key, nonce, reply):
            log.warning("refused an internal connection from %s: a wrong answer to the "
                        "challenge (is cluster.secret the same on every process?)",
                        ws.remote_address)
            await ws.close(handshake.REFUSED_CODE, "authentication failed")
            return False
        await ws.send(handshake.WELCOME)
        return True

    async def _handle(self, ws: ServerConnection) -> None:
        try:
            if not await self._admit(ws):
                return
        except ConnectionClosed:
            return  # gone during the handshake: nothing was taken from it
        slots = asyncio.Semaphore(self.frames_in_flight)
        async with asyncio.TaskGroup() as group:
            # Inside the group: a TaskGroup wraps what its body raises in an
            # ExceptionGroup, which an `except ConnectionClosed` around it never matches.
            try:
                async for frame in ws:
                    await slots.acquire()
                    group.create_task(self._answer(ws, frame, slots))
            except ConnectionClosed:
                pass  # the follower retries what it did not hear back about

    async def _answer(self, ws: ServerConnection, frame: str | bytes,
                      slots: asyncio.Semaphore) -> None:
        try:
            try:
                items = decode_commands(frame)
            except WireError as exc:
                await ws.close(1008, str(exc)[:100])
                return
            await ws.send(encode_results(await self._decide(items)))
        except ConnectionClosed:
            pass
        finally:
            slots.release()

    async def _decide(self, items: list[tuple[int, Command | WireError]]
                      ) -> list[tuple[int, Result | Refused]]:
        """Every well-formed command of the frame in one unit; the others refused."""
        cmds = [cmd for _, cmd in items if not isinstance(cmd, WireError)]
        try:
            answers = iter(await self.submit_many(cmds) if cmds else ())
        except Refused as exc:  # the unit as a whole: overloaded, shutting down
            answers = iter([exc] * len(cmds))
        return [(i, InvalidCommand(str(cmd)) if isinstance(cmd, WireError) else next(answers))
                for i, cmd in items]
