"""Where the fan-out writes: a small interface it owns, and its adapters.

The hub hands one ready-made frame to thousands of clients per update; awaiting each
client's library call would cost several times a socket write. So it writes frames
itself, through `Sink`: is the client open, how many bytes are still unsent, write a
ready frame, abort. `WebSocketSink` is the only code that reaches into websockets'
connection for its protocol state and transport; `TransportSink` serves an aiohttp
stream (SSE). `buffer_state` is the one rule for a client's send buffer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from websockets.asyncio.server import ServerConnection
from websockets.protocol import State

READY, BEHIND, OVER = 0, 1, 2


class Sink(Protocol):
    def is_open(self) -> bool: ...

    def buffered(self) -> int: ...

    def write(self, frame: bytes) -> None: ...

    def abort(self) -> None: ...


def buffer_state(buffered: int, cap: int) -> int:
    """READY (nothing unsent: write now), BEHIND (still sending: skip, send the newest
    later) or OVER (more than `cap` unsent: the client is cut off)."""
    if not buffered:
        return READY
    return OVER if buffered > cap else BEHIND


def abort_transport(transport: asyncio.BaseTransport) -> None:
    """Drop the connection now, unsent bytes and all. Every stream transport has
    `abort` (uvloop's too, though it does not subclass asyncio.WriteTransport)."""
    abort = getattr(transport, "abort", None)
    if abort is not None:
        abort()
    else:
        transport.close()


class WebSocketSink:
    """A `websockets` server connection as a sink.

    Frames are written straight to the transport: server frames are unmasked and no
    extension is negotiated, so one serialized frame is valid for every client. The
    protocol object is told nothing of these writes, which is safe because the hub
    sends only whole data frames and websockets writes its own frames (pings, close)
    whole as well.
    """

    __slots__ = ("_protocol", "_transport", "buffered", "conn", "write")

    def __init__(self, conn: ServerConnection) -> None:
        self.conn = conn
        self._protocol = conn.protocol
        self._transport = conn.transport
        # Bound methods of the transport: one C call each on the hot path.
        self.buffered = self._transport.get_write_buffer_size
        self.write = self._transport.write

    def is_open(self) -> bool:
        return self._protocol.state is State.OPEN

    def abort(self) -> None:
        # A close frame would only queue behind the unread bytes.
        if not self._transport.is_closing():
            self._transport.abort()

    def closing(self) -> bool:
        return self._transport.is_closing()


def when_gone(conn: ServerConnection, callback: Callable[[], None]) -> None:
    """Call `callback` once the TCP connection under `conn` has ended, whether or not
    its WebSocket handshake completed."""
    conn.connection_lost_waiter.add_done_callback(lambda _done: callback())


class TransportSink:
    """An aiohttp response's transport (SSE) as a sink."""

    __slots__ = ("_transport",)

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport

    def is_open(self) -> bool:
        return not self._transport.is_closing()

    def buffered(self) -> int:
        return self._transport.get_write_buffer_size()

    def write(self, frame: bytes) -> None:
        self._transport.write(frame)

    def abort(self) -> None:
        abort_transport(self._transport)
