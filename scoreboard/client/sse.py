"""Reading Server-Sent Events: bytes in, complete messages out (no I/O here).

Per the HTML living standard's event-stream format: lines end in LF, CRLF or CR;
a line starting with `:` is a comment (the service's heartbeats); `field: value` or
`field:value`; `data` lines of one message are joined with LF; a blank line ends the
message. A message with no `data` is not dispatched (the `retry:` preamble). The
buffered part of an unfinished line is capped, so a peer that never ends a line
cannot grow it without limit.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_LINE = 4 * 1024 * 1024  # bytes of one unfinished line


class SseProtocolError(ValueError):
    """The stream broke the format's bounds (a line longer than `max_line`)."""


@dataclass(frozen=True, slots=True)
class SseMessage:
    event: str  # "message" when the stream named none
    data: str
    id: str | None  # the message's own `id:` field, if it had one


class SseParser:
    """Feed it the stream's chunks as they come; it returns the messages they complete."""

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self.max_line = max_line
        self._buffer = b""
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None
        self._cr = False  # the last chunk ended in CR: a following LF belongs to it

    def feed(self, chunk: bytes) -> list[SseMessage]:
        if self._cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]
        self._cr = chunk.endswith(b"\r")
        lines = (self._buffer + chunk).replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        *complete, self._buffer = lines.split(b"\n")
        if len(self._buffer) > self.max_line:
            raise SseProtocolError(f"an event-stream line passed {self.max_line} bytes")
        out: list[SseMessage] = []
        for raw in complete:
            message = self._line(raw.decode("utf-8", "replace"))
            if message is not None:
                out.append(message)
        return out

    def _line(self, line: str) -> SseMessage | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value
        return None  # `retry` and unknown fields: nothing for a consumer

    def _dispatch(self) -> SseMessage | None:
        data, event, ident = self._data, self._event, self._id
        self._data, self._event, self._id = [], "", None
        if not data:
            return None
        return SseMessage(event or "message", "\n".join(data), ident)
