"""Where the fan-out writes: a small interface it owns.

The hub hands one ready-made frame to thousands of clients per update; awaiting each
client's library call would cost several times a socket write. So it writes frames
itself, through `Sink`: is the client open, how many bytes are still unsent, write a
ready frame, abort. The adapters (a websockets connection, an aiohttp stream) live at
the edge (`scoreboard.edge.sinks`). `buffer_state` is the one rule for a client's send
buffer.
"""

from __future__ import annotations

from typing import Protocol

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
