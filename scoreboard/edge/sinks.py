"""The fan-out's sinks at the edge: a `websockets` connection and an aiohttp stream.

`WebSocketSink` is the only code that reaches into websockets' connection for its
protocol state and transport; `TransportSink` serves an aiohttp stream (SSE). Both
implement `scoreboard.live.sink.Sink`.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

from websockets.asyncio.server import ServerConnection
from websockets.protocol import State

from scoreboard.edge.connections import drop


def shrink_send_buffer(transport: asyncio.BaseTransport, size: int) -> None:
    """Keep the kernel's send buffer of a live socket small (`live.socket_send_buffer`).

    Left alone, the kernel grows it to megabytes: a client that stops reading would
    swallow minutes of updates before a single byte waits in our buffer, and the
    stall and cap rules could not see it. Small, unsent bytes show up almost at once.
    """
    if size <= 0:
        return
    sock = transport.get_extra_info("socket")
    if sock is None:
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
    except OSError:  # not a TCP socket, or already closed: nothing to shrink
        pass


def abort_transport(transport: asyncio.BaseTransport) -> None:
    """Drop the connection now, unsent bytes and all, with a reset (uvloop's transports
    included, though they do not subclass asyncio.WriteTransport)."""
    drop(transport)


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
        # websockets' public `state`: reading its private attribute instead would save a
        # property call per client per update, not worth a library private.
        return self._protocol.state is OPEN

    def limit_kernel_buffer(self, size: int) -> None:
        shrink_send_buffer(self._transport, size)

    def abort(self) -> None:
        # A close frame would only queue behind the unread bytes.
        if not self._transport.is_closing():
            drop(self._transport)

    def closing(self) -> bool:
        return self._transport.is_closing()


OPEN = State.OPEN


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
