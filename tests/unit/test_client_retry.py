"""The Python client's retry decisions, its SSE reader and the feed's resume logic,
without a server (the integration tests run them against one)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from typing import Any

import orjson
import pytest

from scoreboard.client.errors import (
    ScoreboardConnectionError,
    ScoreboardError,
    parse_retry_after,
)
from scoreboard.client.feed import follow
from scoreboard.client.retry import RetryNote, RetryPolicy
from scoreboard.client.sse import SseMessage, SseParser, SseProtocolError
from scoreboard.runtime.retry import Backoff

NETWORK = ScoreboardConnectionError("reset")


def error(status: int, retry_after: float | None = None) -> ScoreboardError:
    return ScoreboardError(status, "X", "x", retry_after=retry_after)


def ceilings() -> Backoff:
    return Backoff(0.25, 8.0, random=lambda: 1.0)  # draws exactly the ceilings


@pytest.mark.parametrize(("failure", "tries", "expected"), [
    (NETWORK, 1, 0.25),  # no answer: backoff
    (NETWORK, 4, 0.25),
    (NETWORK, 5, None),  # the last of max_tries
    (error(503), 1, 0.25),
    (error(502), 1, 0.25),
    (error(504), 1, 0.25),
    (error(429), 1, 0.25),
    (error(503, retry_after=3), 1, 3.0),  # Retry-After waited out exactly
    (error(429, retry_after=60), 1, 60.0),
    (error(429, retry_after=86400), 1, None),  # a quota window: raised, with it
    (error(400), 1, None),
    (error(401), 1, None),
    (error(403), 1, None),
    (error(404), 1, None),
    (error(409), 1, None),
    (error(422), 1, None),
    (error(500), 1, None),
    (error(200), 1, None),  # an answer the client cannot read
])
def test_the_decision_table(failure: ScoreboardError, tries: int,
                            expected: float | None) -> None:
    assert RetryPolicy(max_tries=5).delay(failure, tries, ceilings()) == expected


def test_backoff_grows_to_its_cap_and_an_unbounded_policy_never_gives_up() -> None:
    policy = RetryPolicy(max_tries=None, backoff_base=0.25, backoff_cap=1.0)
    backoff = policy.backoff(lambda: 1.0)
    waits = [policy.delay(NETWORK, n, backoff) for n in range(1, 7)]
    assert waits == [0.25, 0.5, 1.0, 1.0, 1.0, 1.0]
    # jitter: a draw lies under the ceiling
    assert RetryPolicy().delay(NETWORK, 1, Backoff(0.25, 8.0, random=lambda: 0.5)) == 0.125


def test_a_policy_needs_one_try() -> None:
    with pytest.raises(ValueError, match="max_tries"):
        RetryPolicy(max_tries=0)


def test_errors_are_read_from_the_json_body() -> None:
    body = orjson.dumps({"error": {"code": "QUOTA_EXCEEDED", "message": "later",
                                   "requestId": "r-1"}})
    e = ScoreboardError.from_response(429, body, {"Retry-After": "7"})
    assert (e.status, e.code, e.message, e.request_id, e.retry_after) == (
        429, "QUOTA_EXCEEDED", "later", "r-1", 7.0)
    e = ScoreboardError.from_response(502, b"<html>bad gateway</html>",
                                      {"X-Request-ID": "r-2"})
    assert (e.status, e.code, e.request_id) == (502, "HTTP_502", "r-2")
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_the_sse_reader_joins_split_chunks_and_drops_comments() -> None:
    parser = SseParser()
    stream = b"retry: 2000\n\n: heartbeat\n\nid: 1\nevent: action\ndata: {\"a\"\r\ndata: :1}\r\n\r"
    out = [m for i in range(len(stream)) for m in parser.feed(stream[i:i + 1])]
    out += parser.feed(b"\nid:2\ndata:x\n\n")
    assert out == [SseMessage("action", '{"a"\n:1}', "1"), SseMessage("message", "x", "2")]
    with pytest.raises(SseProtocolError):
        SseParser(max_line=10).feed(b"data: " + b"x" * 20)


def record(seq: int) -> bytes:
    data = orjson.dumps({"seq": seq, "kind": "action", "board": "global", "userId": "u"})
    return b"id: %d\nevent: action\ndata: %s\n\n" % (seq, data)


class Script:
    """A feed source playing connections from a script: each is a list of chunks,
    ended by the exception it raises (or None: the stream just ends)."""

    def __init__(self, connections: list[tuple[list[bytes], ScoreboardError | None]]) -> None:
        self.connections = connections
        self.asked: list[int] = []
        self.renewed = 0

    async def stream(self, after: int) -> AsyncGenerator[bytes, None]:
        self.asked.append(after)
        chunks, ending = self.connections.pop(0)
        for chunk in chunks:
            yield chunk
        if ending is not None:
            raise ending

    async def page(self, after: int) -> Mapping[str, Any]:
        """A connection's events as one page; its ending is the next page's answer."""
        self.asked.append(after)
        chunks, ending = self.connections.pop(0)
        if chunks and ending is not None:
            self.connections.insert(0, ([], ending))
        elif ending is not None:
            raise ending
        events = [orjson.loads(c.split(b"data: ")[1]) for c in chunks]
        return {"events": events, "next": events[-1]["seq"] if events else after}

    async def renew(self, error: ScoreboardError) -> bool:
        self.renewed += 1
        return True


@pytest.mark.parametrize(("mode", "asked"), [
    ("sse", [3, 5, 5, 6]),
    ("poll", [3, 5, 5, 5, 6, 6, 7]),
])
async def test_the_feed_resumes_from_its_last_seq_and_never_repeats(
    mode: Any, asked: list[int],
) -> None:
    script = Script([
        ([record(4), record(5)], NETWORK),
        ([], error(503, retry_after=2)),
        ([record(5), record(6)], error(401)),  # a server replaying 5: skipped
        ([record(3), record(7)], error(403)),
    ])
    waits: list[float] = []
    notes: list[RetryNote] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    seen = []
    with pytest.raises(ScoreboardError) as raised:
        async for event in follow(script, 3, mode=mode, sleep=sleep, random=lambda: 1.0,
                                  on_retry=notes.append):
            seen.append(event.seq)
    assert seen == [4, 5, 6, 7] and raised.value.status == 403
    assert script.asked == asked
    assert script.renewed == 1  # the 401: a fresh token and at once a new try
    # after progress the backoff starts again at its base; Retry-After is waited exactly
    assert waits == [0.25, 2.0] and [n.tries for n in notes] == [1, 2]
