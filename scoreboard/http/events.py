"""`GET /api/v1/events?after=SEQ` (service scope): every committed record, in seq order.

With `Accept: text/event-stream` the answer is an endless SSE stream: `id: <seq>`,
`event: <kind>`, `data: <the record>`, starting after `Last-Event-ID` when a client
reconnects (else after `after`), catching up from the log and then following live.
The handler is the consumer's one writer and reads one chunk at a time from its own
position (`EventFeed`), so a slow consumer holds one chunk, never a growing buffer,
and one whose writes stall is cut off like a live viewer (`live.stall_seconds`,
`live.send_buffer_cap`). A stream whose token is revoked or expires (`LiveSessions`)
ends with an `event: error` whose data is `{"code": "UNAUTHORIZED", "message": <why>}`;
the JSON page needs no such care: each request shows its token afresh.

Otherwise the answer is a JSON page, `{"events": [...], "next": seq}` with up to
`limit` records after `after`; when there is none it waits up to `wait` seconds for
one. `next` is what to send as `after` for the following page.
"""

from __future__ import annotations

import logging

import orjson
from aiohttp import web

from scoreboard.auth.tokens import Principal
from scoreboard.edge import contract as c
from scoreboard.edge import validation as v
from scoreboard.edge.envelope import Routes, json_response
from scoreboard.edge.errors import Unavailable
from scoreboard.events.feed import EventFeed
from scoreboard.events.wire import record_json, sse_events
from scoreboard.http.public import Gatekeeper
from scoreboard.http.sse import GONE, RETRY_MS, send
from scoreboard.live import messages
from scoreboard.live.sessions import LiveSessions

log = logging.getLogger("scoreboard.events")

SSE_CHUNK = 500  # records per read and per write of a stream
BUSY_RETRY = 5.0


class EventsApi:
    def __init__(self, gate: Gatekeeper, feed: EventFeed,
                 sessions: LiveSessions | None = None) -> None:
        self.gate = gate
        self.settings = gate.settings
        self.feed = feed
        self.sessions = sessions or LiveSessions(self.settings.auth.leeway_seconds)
        self.consumers = 0
        self.cut_off = 0  # consumers dropped for stalling, for logs and tests

    def add_routes(self, routes: Routes) -> None:
        routes.add_get(c.EVENTS_PATH, self.events)
        routes.app.on_shutdown.append(self._on_shutdown)

    async def _on_shutdown(self, app: web.Application) -> None:
        self.feed.close()  # aiohttp waits for running handlers: end streams and polls

    async def events(self, request: web.Request) -> web.StreamResponse:
        principal = self.gate.scoped(request, self.settings.auth.service_scope)
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
                return await self.stream(request, principal,
                                         after if last is None else last)
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

    async def stream(self, request: web.Request, principal: Principal,
                     after: int) -> web.StreamResponse:
        response = web.StreamResponse(headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",  # nginx: pass events through at once
        })
        await response.prepare(request)
        feed = self.feed
        ending: list[str] = []  # why the token stopped being valid, once it has

        def end(why: str) -> None:
            ending.append(why)
            feed.wake()  # this stream's wait returns; the others wait on

        session = self.sessions.add(principal, end)
        try:
            await self._follow(request, response, after, ending)
            if ending:
                await send(request, response, messages.sse_error("UNAUTHORIZED", ending[0]),
                           self.settings.live)
        finally:
            self.sessions.remove(session)
        return response

    async def _follow(self, request: web.Request, response: web.StreamResponse, after: int,
                      ending: list[str]) -> None:
        """Send records from `after` on until the feed closes, the consumer goes or is
        cut off, or its token ends (`ending` is no longer empty)."""
        live = self.settings.live
        feed = self.feed
        pending = messages.sse_retry(RETRY_MS)
        position = after
        while not feed.closing and not ending:
            records = await feed.read(position, SSE_CHUNK)
            if records:
                pending += sse_events(records)
                position = records[-1].seq
            elif not pending:
                news = await feed.wait(position, live.sse_heartbeat, stop=lambda: bool(ending))
                if not (news or feed.closing or ending):
                    pending = messages.SSE_HEARTBEAT
                continue
            why = await send(request, response, pending, live)
            if why is not None:
                if why != GONE:
                    self.cut_off += 1
                    log.info("cutting off a slow event consumer: %s", why)
                break
            pending = b""
