"""`WebSocketSink.is_open` reads websockets' `Protocol._state`, the attribute behind its
`state` property. If a websockets release changes that, this fails: read `state` there
again (or find the new attribute)."""

from __future__ import annotations

from websockets.protocol import State
from websockets.server import ServerProtocol

from scoreboard.edge.sinks import WebSocketSink


class Conn:
    """The two attributes of a websockets connection the sink reads."""

    def __init__(self, protocol: ServerProtocol) -> None:
        self.protocol = protocol
        self.transport = Transport()


class Transport:
    def get_write_buffer_size(self) -> int:
        return 0

    def write(self, data: bytes) -> None:
        pass


def test_is_open_follows_the_protocol_state() -> None:
    protocol = ServerProtocol()
    sink = WebSocketSink(Conn(protocol))  # type: ignore[arg-type]
    assert protocol.state is State.CONNECTING and not sink.is_open()
    protocol.state = State.OPEN
    assert protocol._state is protocol.state and sink.is_open()
    protocol.send_close(1001)  # the server starts the closing handshake
    assert protocol.state is State.CLOSING and not sink.is_open()
    protocol.state = State.CLOSED
    assert not sink.is_open()
