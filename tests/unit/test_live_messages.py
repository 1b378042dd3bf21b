"""Wire formats of live updates: messages, frames, SSE events, the top-N change rule."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from scoreboard.live import messages
from scoreboard.live.messages import TopView


def entry(rank: int, user: str, score: int, name: str | None = None) -> dict[str, Any]:
    return {"rank": rank, "userId": user, "displayName": name or user.title(), "score": score}


TOP = [entry(1, "ann", 30), entry(2, "bob", 20)]


@pytest.mark.parametrize(
    ("before", "after", "changed"),
    [
        (None, TOP, True),  # nothing sent yet
        (TOP, [dict(e) for e in TOP], False),  # equal entries, whatever the version
        (TOP, [entry(1, "ann", 40), entry(2, "bob", 20)], True),  # a score
        (TOP, [entry(1, "bob", 30), entry(2, "ann", 20)], True),  # an order
        (TOP, [entry(1, "ann", 30), entry(2, "bob", 20, "Bobby")], True),  # a shown name
        (TOP, TOP[:1], True),  # someone left (frozen)
        (TOP, [*TOP, entry(3, "cy", 5)], True),  # someone new in the top N
        ([], [], False),
    ],
)
def test_top_changed(before: list[dict[str, Any]] | None, after: list[dict[str, Any]],
                     changed: bool) -> None:
    assert messages.top_changed(before, after) is changed


def parse_frame(data: bytes) -> Frame:
    reader = StreamReader()
    reader.feed_data(data)
    parser = Frame.parse(reader.read_exact, mask=False)
    try:
        next(parser)
    except StopIteration as done:
        frame: Frame = done.value
        return frame
    raise AssertionError("incomplete frame")


@pytest.mark.parametrize("size", [0, 10, 125, 126, 65535, 65536, 200_000])
def test_ws_text_frame_round_trips_every_length_encoding(size: int) -> None:
    payload = b"x" * size
    frame = parse_frame(messages.ws_text_frame(payload))
    assert frame.opcode is Opcode.TEXT and frame.fin and bytes(frame.data) == payload


def test_top_view_encodes_once_for_every_transport() -> None:
    data = {"board": "global", "version": 7, "top": TOP, "timestamp": "2024-01-01T00:00:00.000Z"}
    view = TopView.build(10, data)
    assert orjson.loads(view.data_json) == data
    ws = orjson.loads(parse_frame(view.ws_frame).data)
    assert ws == {"type": "LEADERBOARD_UPDATE", "data": data}
    assert orjson.loads(view.ws_message) == ws
    text = view.sse_event.decode()
    assert text.endswith("\n\n") and text.count("\n") == 4
    lines = text.splitlines()
    assert lines[0] == "event: leaderboard" and lines[1] == "id: 7"
    assert orjson.loads(lines[2].removeprefix("data: ")) == data


def test_sse_data_stays_on_one_line_whatever_the_names_hold() -> None:
    data = {"board": "global", "version": 1, "timestamp": "t",
            "top": [entry(1, "ann", 1, "line\nbreak\r\n: not a comment")]}
    event = TopView.build(10, data).sse_event
    assert event.count(b"\n") == 4  # event, id, data, blank line


def test_ack_and_error_messages() -> None:
    ack = orjson.loads(messages.ack("alice", "global", 0.0, 20.0))
    assert ack == {"type": "CONNECTION_ACK", "data": {
        "userId": "alice", "board": "global", "connectedAt": "1970-01-01T00:00:00.000Z",
        "heartbeatSeconds": 20.0}}
    assert orjson.loads(messages.ack(None, "b", 0.0, 1.0))["data"]["userId"] is None
    err = orjson.loads(messages.error("RECEIVE_ONLY", "no"))
    assert err == {"type": "ERROR", "data": {"code": "RECEIVE_ONLY", "message": "no"}}


def test_sse_helpers() -> None:
    assert messages.sse_retry(2000) == b"retry: 2000\n\n"
    assert messages.sse_event("x", None, b"{}") == b"event: x\ndata: {}\n\n"
    assert messages.SSE_HEARTBEAT.startswith(b":") and messages.SSE_HEARTBEAT.endswith(b"\n\n")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, None), ("", None), ("12", 12), (" 12 ", 12), ("0", 0), ("-1", None),
        ("1.5", None), ("abc", None), ("9" * 20, None), (str(2**63), None),
        (str(2**63 - 1), 2**63 - 1), ("\uff11\uff12", None),
    ],
)
def test_parse_last_event_id(raw: str | None, expected: int | None) -> None:
    assert messages.parse_last_event_id(raw) == expected
