"""`GET /api/v1/events?after=SEQ` (service scope): every committed record, in seq order.

With `Accept: text/event-stream` the answer is an endless SSE stream: `id: <seq>`,
`event: <kind>`, `data: <the record>`, starting after `Last-Event-ID` when a client
reconnects (else after `after`), catching up from the log and then following live.
The handler is the consumer's one writer and reads one chunk at a time from its own
position (`EventFeed`), so a slow consumer holds one chunk, never a growing buffer,
and one whose writes stall is cut off like a live viewer (`live.stall_seconds`,
`live.send_buffer_cap`).

Otherwise the answer is a JSON page, `{"events": [...], "next": seq}` with up to
`limit` records after `after`; when there is none it waits up to `wait` seconds for
one. `next` is what to send as `after` for the following page.
"""

from __future__ import annotations

import logging

import orjson
from aiohttp import web

from scoreboard.edge import contract as c
from scoreboard.edge import validation as v
from scoreboard.edge.envelope import Routes, json_response
from scoreboard.edge.errors import Unavailable
from scoreboard.events.feed import EventFeed
from scoreboard.events.wire import record_json, sse_events
from scoreboard.http.public import Gatekeeper
from scoreboard.http.sse import GONE, RETRY_MS, send
from scoreboard.live import messages

log = logging.getLogger("scoreboard.events")

SSE_CHUNK = 500  # records per read and per write of a stream
BUSY_RETRY = 5.0


class EventsApi:
    def __init__(self, gate: Gatekeeper, feed: EventFeed) -> None:
        self.gate = gate
        self.settings = gate.settings
        self.feed = feed
        self.consumers = 0
        self.cut_off = 0  # consumers dropped for stalling, for logs and tests

    def add_routes(self, routes: Routes) -> None:
        routes.add_get(c.EVENTS_PATH, self.events)
        routes.app.on_shutdown.append(self._on_shutdown)

    async def _on_shutdown(self, app: web.Application) -> None:
        self.feed.close()  # aiohttp waits for running handlers: end streams and polls

    async def events(self, request: web.Request) -> web.StreamResponse:
        self.gate.scoped(request, self.settings.auth.service_scope)
        self.gate.limit(request, None)
        ev = self.settings.events
        query = request.query
        after = v.int_param(query.get("after"), "after", 0, 0, c.MAX_SEQ)
        limit = v.int_param(query.get("limit"), "limit", min(c.EVENTS_DEFAULT, ev.page_limit),
                            1, ev.page_limit)
        wait = v.int_param(query.get("wait"), "wait", 0, 0, int(ev.max_wait))
        if self.feed.closing:
            raise Unavailable("the service is shutting down", retry_after=2.0)
        if self.consumers >= ev.max_consumers:
            raise Unavailable("too many event consumers", retry_after=BUSY_RETRY)
        self.consumers += 1
        try:
            if "text/event-stream" in request.headers.get("Accept", ""):
                last = messages.parse_last_event_id(request.headers.get("Last-Event-ID"))
                return await self.stream(request, after if last is None else last)
            return await self.page(after, limit, wait)
        finally:
            self.consumers -= 1

    async def page(self, after: int, limit: int, wait: int) -> web.Response:
        feed = self.feed
        records = await feed.read(after, limit)
        if not records and wait and await feed.wait(after, wait):
            records = await feed.read(after, limit)
        return json_response(orjson.dumps({
            "events": [record_json(r) for r in records],
            "next": records[-1].seq if records else after,
        }))

    async def stream(self, request: web.Request, after: int) -> web.StreamResponse:
        response = web.StreamResponse(headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",  # nginx: pass events through at once
        })
        await response.prepare(request)
        live = self.settings.live
        feed = self.feed
        pending = messages.sse_retry(RETRY_MS)
        position = after
        while not feed.closing:
            records = await feed.read(position, SSE_CHUNK)
            if records:
                pending += sse_events(records)
                position = records[-1].seq
            elif not pending:
                if not await feed.wait(position, live.sse_heartbeat) and not feed.closing:
                    pending = messages.SSE_HEARTBEAT
                continue
            why = await send(request, response, pending, live)
            if why is not None:
                if why != GONE:
                    self.cut_off += 1
                    log.info("cutting off a slow event consumer: %s", why)
                break
            pending = b""
        return response
