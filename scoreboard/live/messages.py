"""Wire formats of the live updates, and the rule that decides when a board changed.

Pure: no I/O and no clock (times are passed in). One `TopView` is built per changed
(board, limit) and carries every encoding of it, so a broadcast encodes once however
many clients receive it:

- `data`: the JSON object shared by LEADERBOARD_UPDATE and the SSE `leaderboard` event;
- `ws_frame`: the whole WebSocket text frame. Server frames are never masked and we
  negotiate no extension, so the frame bytes are the same for every client;
- `sse_event`: the whole SSE event.

A period that closes is told once per (board, limit) by a `PeriodClosedNotice`, before
the new period's (empty) board comes as a normal update.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from websockets.frames import Frame, Opcode

from scoreboard.read.views import iso

SSE_HEARTBEAT = b": heartbeat\n\n"
MAX_EVENT_ID = 2**63 - 1


def top_changed(before: list[dict[str, Any]] | None, after: list[dict[str, Any]]) -> bool:
    """Whether viewers of a top N must hear about `after`.

    Entries are compared whole (rank by position, user, shown name, score), not by the
    board version: the version also moves for changes below the top N.
    """
    return before != after


def ws_text_frame(payload: bytes) -> bytes:
    """One unmasked, unfragmented text frame carrying `payload` (UTF-8 JSON)."""
    return Frame(Opcode.TEXT, payload).serialize(mask=False)


def message(kind: str, data_json: bytes) -> bytes:
    """`{"type": kind, "data": …}` around an already encoded data object."""
    return b'{"type":"' + kind.encode() + b'","data":' + data_json + b"}"


def sse_event(event: str, event_id: int | None, data_json: bytes) -> bytes:
    """One SSE event; `data_json` is single-line (orjson never writes a newline)."""
    head = b"event: " + event.encode() + b"\n"
    if event_id is not None:
        head += b"id: %d\n" % event_id
    return head + b"data: " + data_json + b"\n\n"


def sse_retry(milliseconds: int) -> bytes:
    """How long a browser's EventSource waits before it reconnects."""
    return b"retry: %d\n\n" % milliseconds


def ack(user_id: str | None, board: str, connected_at: float, heartbeat: float) -> bytes:
    data = orjson.dumps(
        {
            "userId": user_id,
            "board": board,
            "connectedAt": iso(connected_at),
            "heartbeatSeconds": heartbeat,
        }
    )
    return message("CONNECTION_ACK", data)


def error(code: str, text: str) -> bytes:
    return message("ERROR", error_data(code, text))


def error_data(code: str, text: str) -> bytes:
    """The data object of an ERROR message and of an SSE `error` event."""
    return orjson.dumps({"code": code, "message": text})


def sse_error(code: str, text: str) -> bytes:
    """The SSE event that ends a stream with a reason (no id: it is not a position)."""
    return sse_event("error", None, error_data(code, text))


def parse_last_event_id(raw: str | None) -> int | None:
    """The version a reconnecting SSE client already has, or None if absent or malformed."""
    if raw is None:
        return None
    raw = raw.strip()
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 19:
        return None
    value = int(raw)
    return value if value <= MAX_EVENT_ID else None


@dataclass(frozen=True, slots=True, eq=False)
class TopView:
    """The top N of one board at one version, in every encoding a client may need.

    Compared by identity: a client holding this very object has this state.
    """

    board: str
    limit: int
    version: int
    period: str | None
    top: list[dict[str, Any]]
    data_json: bytes
    ws_frame: bytes
    sse_event: bytes

    @classmethod
    def build(cls, limit: int, data: dict[str, Any]) -> TopView:
        """From the data object `Views.live_update` made (board, version, top, timestamp)."""
        data_json = orjson.dumps(data)
        version = int(data["version"])
        return cls(
            board=str(data["board"]),
            limit=limit,
            version=version,
            period=data.get("period"),
            top=data["top"],
            data_json=data_json,
            ws_frame=ws_text_frame(message("LEADERBOARD_UPDATE", data_json)),
            sse_event=sse_event("leaderboard", version, data_json),
        )

    @property
    def ws_message(self) -> bytes:
        """The LEADERBOARD_UPDATE message itself (for the protocol-level send)."""
        return message("LEADERBOARD_UPDATE", self.data_json)


@dataclass(frozen=True, slots=True)
class PeriodClosedNotice:
    """PERIOD_CLOSED for the viewers of one (board, limit), encoded once for all."""

    data_json: bytes  # {"board", "period", "endsAt", "top"}
    ws_frame: bytes
    sse_event: bytes

    @classmethod
    def build(cls, board: str, period: str, ends_at: float,
              top: list[dict[str, Any]]) -> PeriodClosedNotice:
        data_json = orjson.dumps({"board": board, "period": period, "endsAt": iso(ends_at),
                                  "top": top})
        return cls(data_json, ws_text_frame(message("PERIOD_CLOSED", data_json)),
                   sse_event("period_closed", None, data_json))
