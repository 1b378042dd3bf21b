"""Following the event feed (SPEC §9) across disconnects: no gap, no repeat.

`follow` keeps one position, the seq of the last event it yielded, and every
(re)connection asks for the events after it: the SSE stream with `Last-Event-ID`
(and `?after=`), or the next JSON page with `after=`. The service sends each
committed record once, in seq order, from any position, so resuming there after a
dropped connection, a 503 or a restarted server leaves nothing out; and an event at
or below the position is skipped, so nothing comes twice either. Reconnections are
paced by `RetryPolicy` with one `Backoff` that is reset whenever an event arrives;
refusals that no retry can fix (401, 403, 400) end the iteration with the error.

The transport is a narrow interface (`FeedSource`) the client implements, so this
logic is tested without a server as well as against one.
"""

from __future__ import annotations

import random as _random
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from contextlib import aclosing
from typing import Any, Literal, Protocol

import orjson

from scoreboard.client.errors import ScoreboardConnectionError, ScoreboardError
from scoreboard.client.models import Event
from scoreboard.client.retry import OnRetry, RetryNote, RetryPolicy, Sleep
from scoreboard.client.sse import SseParser, SseProtocolError

Mode = Literal["sse", "poll"]


class FeedSource(Protocol):
    """One connection's worth of the feed; every failure raised as a `ScoreboardError`."""

    def stream(self, after: int) -> AsyncGenerator[bytes, None]:
        """The SSE stream's bytes from `after` on, until the connection ends."""
        ...

    async def page(self, after: int) -> Mapping[str, Any]:
        """One JSON page of events after `after` (long-polling when there is none)."""
        ...

    async def renew(self, error: ScoreboardError) -> bool:
        """After a 401: whether a fresh token was obtained and a new try is worth it."""
        ...


def sse_events(parser: SseParser, chunk: bytes) -> list[Event]:
    """The events a chunk of the stream completes (heartbeats and `retry:` dropped)."""
    out = []
    for message in parser.feed(chunk):
        try:
            record = orjson.loads(message.data)
            event = Event.from_json(record)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ScoreboardError(200, "INVALID_RESPONSE",
                                  f"an event the client cannot read: {exc}") from exc
        out.append(event)
    return out


def page_events(page: Mapping[str, Any], last: int) -> tuple[list[Event], int]:
    """The events of a JSON page and the position to ask from next."""
    try:
        events = [Event.from_json(record) for record in page["events"]]
        return events, max(last, int(page.get("next", last)))
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise ScoreboardError(200, "INVALID_RESPONSE",
                              f"an events page the client cannot read: {exc}") from exc


async def follow(source: FeedSource, after: int, *, mode: Mode = "sse",
                 policy: RetryPolicy | None = None, sleep: Sleep,
                 random: Callable[[], float] = _random.random,
                 on_retry: OnRetry | None = None) -> AsyncIterator[Event]:
    """Every event after `after`, in seq order, each once, resuming after failures."""
    policy = policy or RetryPolicy(max_tries=None)
    backoff = policy.backoff(random)
    last = after
    tries = 0
    renewed = False
    while True:
        error: ScoreboardError
        try:
            if mode == "sse":
                parser = SseParser()
                async with aclosing(source.stream(last)) as chunks:
                    async for chunk in chunks:
                        for event in sse_events(parser, chunk):
                            if event.seq <= last:
                                continue
                            last = event.seq
                            tries, renewed = 0, False
                            backoff.reset()
                            yield event
                error = ScoreboardConnectionError("the event stream ended")
            else:
                events, following = page_events(await source.page(last), last)
                for event in events:
                    if event.seq > last:
                        last = event.seq
                        yield event
                last = max(last, following)
                tries, renewed = 0, False
                backoff.reset()
                continue  # the next long poll at once: the service does the waiting
        except SseProtocolError as exc:
            error = ScoreboardConnectionError(str(exc))
        except ScoreboardError as exc:
            error = exc
        tries += 1
        if error.status == 401 and not renewed and await source.renew(error):
            renewed = True
            continue
        delay = policy.delay(error, tries, backoff)
        if delay is None:
            raise error
        if on_retry is not None:
            on_retry(RetryNote(tries, delay, error))
        await sleep(delay)
