"""Fan-out of leaderboard changes to live viewers, coalesced per board.

Viewers of the same (board, limit) form a `Group`. The writer tells the hub after every
committed batch (`on_commit`); the hub's one task then, at most once per broadcast
interval, asks each group's board whether its top N changed (entries compared, not
just the version), builds one `TopView` with every encoding, and hands it to everyone:

- WebSocket clients get the ready-made frame with one write each to their `Sink`,
  never an await per client. Before writing, the client's send buffer is checked
  (`buffer_state`): empty, it is written; above `send_buffer_cap`, the client is cut
  off; in between, the client is *behind* and gets nothing now. Behind clients are
  looked at every interval: once their buffer drains they get the group's newest
  view (never a backlog); one whose buffer has not drained for `stall_seconds` is
  cut off.
- SSE clients each have a writer (their request handler) awaiting a wake-up; the hub
  only wakes them, and each writer sends its group's newest view when it can. A slow
  SSE client therefore delays nobody but itself.

Readers never see an uncommitted change: the hub reads the engine only, and the engine
holds only committed records (the writer calls `on_commit` after commit and apply).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from scoreboard.core.records import LogRecord, PeriodClosedRecord
from scoreboard.live.messages import PeriodClosedNotice, TopView, top_changed
from scoreboard.live.sink import OVER, READY, Sink, buffer_state
from scoreboard.read.views import Views
from scoreboard.runtime.metrics import Metrics
from scoreboard.settings.model import LiveSettings

log = logging.getLogger("scoreboard.live")


class WsClient:
    """One WebSocket viewer: where its frames go and the version it was last given."""

    __slots__ = ("group", "sink", "version")

    def __init__(self, sink: Sink, group: Group) -> None:
        self.sink = sink
        self.group = group
        self.version = -1


class SseClient:
    """One SSE viewer; its own writer task sends `group.current` when woken."""

    __slots__ = ("closed", "ending", "group", "notices", "version", "wake")

    def __init__(self, group: Group) -> None:
        self.group = group
        self.version = -1
        self.wake = asyncio.Event()
        # what came between tops (a period closed), to tell before the next top, in
        # order; None: the viewer takes tops only
        self.notices: list[PeriodClosedNotice] | None = None
        self.closed = False
        self.ending: str | None = None  # why its session ended (token revoked or expired)

    def hang_up(self) -> None:
        """The stream is over (the client left, or shutdown): its writer ends."""
        self.closed = True
        self.wake.set()

    def end(self, why: str) -> None:
        """Its token is no longer valid: the writer says `why` instead of a last top."""
        self.ending = why
        self.hang_up()


@dataclass(eq=False)
class Group:
    """Viewers of one (board, limit) and the newest top they must all end up with."""

    board: str
    limit: int
    current: TopView
    checked: int  # the board version `current` was last compared at
    # a dict as an ordered set: the fan-out walks it in the order clients joined, over
    # contiguous entries, which is measurably cheaper than a set's hash order
    ws: dict[WsClient, None] = field(default_factory=dict)
    sse: set[SseClient] = field(default_factory=set)
    # clients that joined with a view newer than `current`, and that view's top
    joiners: dict[WsClient | SseClient, list[dict[str, Any]]] = field(default_factory=dict)
    # the view those joiners were given, built once for all of them; it becomes
    # `current` at the next flush if the board is still at its version
    ahead: TopView | None = None

    def __len__(self) -> int:
        return len(self.ws) + len(self.sse)


class Hub:
    def __init__(self, views: Views, settings: LiveSettings, metrics: Metrics, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.views = views
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        self.cap = settings.send_buffer_cap
        self._groups: dict[tuple[str, int], Group] = {}
        # the last view of each group that went away, with the version it was checked
        # at: a viewer who comes back (or the next one) while the board stands gets the
        # same bytes instead of a new encoding
        self._left: dict[tuple[str, int], tuple[TopView, int]] = {}
        self._behind: dict[WsClient, float] = {}  # client → when it fell behind
        self._wake = asyncio.Event()
        self.cut_off = 0  # slow clients dropped, for logs and tests

    # -- the change feed -----------------------------------------------------------------

    def on_commit(self, records: Sequence[LogRecord]) -> None:
        """Writer listener: a batch was committed and applied. A closed period is told
        at once, so that it comes before the next flush's new (empty) board."""
        for r in records:
            if isinstance(r, PeriodClosedRecord):
                self._period_closed(r)
        self._wake.set()

    def _period_closed(self, r: PeriodClosedRecord) -> None:
        """PERIOD_CLOSED to every viewer of the board, encoded once per group."""
        for group in self._groups.values():
            if group.board != r.board or not len(group):
                continue
            notice = PeriodClosedNotice.build(
                r.board, r.period, r.ends_at, self.views.closed_top(r.top, group.limit))
            for c in group.ws:
                sink = c.sink
                if not sink.is_open():
                    continue
                if buffer_state(sink.buffered(), self.cap) == OVER:
                    self._cut(c, "its send buffer passed the cap")
                else:
                    sink.write(notice.ws_frame)
            for viewer in group.sse:
                if viewer.notices is not None:
                    viewer.notices.append(notice)
                    viewer.wake.set()

    async def run(self) -> None:
        """Broadcast changes; owned by the live server.

        Rounds start at most once per broadcast interval, and the pause after a round
        is at least as long as the round took: however many viewers there are, fan-out
        never takes more than half of the loop's time from requests and commits.
        """
        interval = self.settings.broadcast_interval
        while True:
            if not self._behind:
                await self._wake.wait()
            self._wake.clear()
            started = time.perf_counter()
            try:
                self.flush()
            except Exception:  # one bad round must not end live updates for good
                log.exception("broadcast failed")
            spent = time.perf_counter() - started
            # the coalescing window, not a wait for an event
            await asyncio.sleep(max(interval - spent, spent))

    def flush(self) -> None:
        for group in list(self._groups.values()):
            view = self._refresh(group)
            if view is not None:
                self.fanout(group, view)
            if group.joiners:
                self._settle_joiners(group)
        if self._behind:
            self._service_behind()

    def _fresh(self, group: Group) -> TopView | None:
        """The board's newest top if its version moved since the group last looked and
        the top differs from `current`; None otherwise. Built once per version: the
        view made for joiners (`ahead`) is reused."""
        ranking = self.views.ranking(group.board)
        if ranking is None or ranking.version == group.checked:
            return None
        ahead = group.ahead
        if ahead is not None and ahead.version == ranking.version:
            return ahead
        data = self.views.live_update(ranking, group.limit)
        if data["period"] == group.current.period and not top_changed(
                group.current.top, data["top"]):
            group.checked = data["version"]
            return None
        return TopView.build(group.limit, data)

    def _refresh(self, group: Group) -> TopView | None:
        view = self._fresh(group)
        group.ahead = None
        if view is None:
            return None
        group.checked = view.version
        group.current = view
        return view

    # -- sending -------------------------------------------------------------------------

    def fanout(self, group: Group, view: TopView) -> None:
        """Hand `view` to every client of the group without awaiting any of them."""
        started = time.perf_counter()
        frame = view.ws_frame
        version = view.version
        cap = self.cap
        sent = 0
        behind: list[WsClient] = []
        over: list[WsClient] = []
        for c in group.ws:  # the hot loop: per client, two checks and one write
            if c.version == version:
                continue
            sink = c.sink
            # `buffer_state`, inlined: this runs once per client per update
            buffered = sink.buffered()
            if not sink.is_open():
                continue
            if not buffered:
                sink.write(frame)
                c.version = version
                sent += 1
            elif buffered > cap:
                over.append(c)
            else:
                behind.append(c)
        for viewer in group.sse:
            if viewer.version != version:
                viewer.wake.set()
        now = self.clock()
        for c in behind:
            self._behind.setdefault(c, now)
        for c in over:
            self._cut(c, "its send buffer passed the cap")
        elapsed = time.perf_counter() - started
        self.metrics.broadcast_seconds.observe(elapsed)
        if sent:
            self.metrics.broadcasts.labels("ws").inc()
        if group.sse:
            self.metrics.broadcasts.labels("sse").inc()

    def _send_ws(self, c: WsClient, view: TopView) -> None:
        """Give one client `view` now, or mark it behind (it gets the newest later)."""
        sink = c.sink
        if not sink.is_open():
            return
        state = buffer_state(sink.buffered(), self.cap)
        if state == READY:
            sink.write(view.ws_frame)
            c.version = view.version
        elif state == OVER:
            self._cut(c, "its send buffer passed the cap")
        else:
            self._behind.setdefault(c, self.clock())

    def _settle_joiners(self, group: Group) -> None:
        """Clients that joined with a newer top than `current` must end on `current`."""
        current = group.current
        for c, top in group.joiners.items():
            if c.version == current.version or not top_changed(top, current.top):
                continue
            if isinstance(c, WsClient):
                self._send_ws(c, current)
            else:
                c.wake.set()
        group.joiners.clear()

    def _service_behind(self) -> None:
        now = self.clock()
        stall = self.settings.stall_seconds
        for c, since in list(self._behind.items()):
            sink = c.sink
            if not sink.is_open():
                del self._behind[c]
                continue
            state = buffer_state(sink.buffered(), self.cap)
            if state == READY:
                del self._behind[c]
                current = c.group.current
                if c.version != current.version:
                    self._send_ws(c, current)
            elif state == OVER:
                self._cut(c, "its send buffer passed the cap")
            elif now - since > stall:
                self._cut(c, f"its send buffer did not drain for {stall:g} s")

    def _cut(self, c: WsClient, why: str) -> None:
        self._behind.pop(c, None)
        if not c.sink.is_open():
            return
        self.cut_off += 1
        log.info("cutting off a slow WebSocket client: %s", why)
        c.sink.abort()

    # -- membership ----------------------------------------------------------------------

    def _group(self, board: str, limit: int) -> Group:
        group = self._groups.get((board, limit))
        if group is None:
            ranking = self.views.ranking(board)
            if ranking is None:
                raise LookupError(board)
            left = self._left.pop((board, limit), None)
            if left is not None and left[1] == ranking.version and left[0].period == (
                    None if (period := self.views.period(board)) is None else period.id):
                group = Group(board, limit, *left)
            else:
                data = self.views.live_update(ranking, limit)
                group = Group(board, limit, TopView.build(limit, data), data["version"])
            self._groups[(board, limit)] = group
        return group

    def _snapshot(self, group: Group, client: WsClient | SseClient) -> TopView:
        """What a new client starts from: the group's view, or a newer one if the top
        moved and the group has not been told yet (it will be at the next flush)."""
        view = self._fresh(group)
        if view is None:
            return group.current
        group.ahead = view
        group.joiners[client] = view.top
        self._wake.set()
        return view

    def join_ws(self, sink: Sink, board: str, limit: int) -> WsClient:
        """Register a viewer and write its snapshot in the same step (no update can slip
        in between). The caller has written the CONNECTION_ACK just before."""
        group = self._group(board, limit)
        client = WsClient(sink, group)
        view = self._snapshot(group, client)
        sink.write(view.ws_frame)
        client.version = view.version
        group.ws[client] = None
        self.metrics.connections.labels("ws").inc()
        return client

    def leave_ws(self, client: WsClient) -> None:
        group = client.group
        group.ws.pop(client, None)
        group.joiners.pop(client, None)
        self._behind.pop(client, None)
        self.metrics.connections.labels("ws").dec()
        self._drop_if_empty(group)

    def join_sse(self, board: str, limit: int, last_event_id: int | None, *,
                 notices: bool = False) -> tuple[SseClient, TopView | None]:
        """Register an SSE viewer; returns it and the snapshot to send first, or None
        when the client's Last-Event-ID shows it already has the current top. With
        `notices`, it also gets the events that come between tops (a period closed)."""
        group = self._group(board, limit)
        client = SseClient(group)
        if notices:
            client.notices = []
        view = self._snapshot(group, client)
        client.version = view.version
        group.sse.add(client)
        self.metrics.connections.labels("sse").inc()
        return client, (None if last_event_id == view.version else view)

    def leave_sse(self, client: SseClient) -> None:
        client.closed = True
        group = client.group
        group.sse.discard(client)
        group.joiners.pop(client, None)
        self.metrics.connections.labels("sse").dec()
        self._drop_if_empty(group)

    def close_sse(self) -> None:
        """Shutdown: every SSE writer ends its stream."""
        for group in self._groups.values():
            for c in group.sse:
                c.hang_up()

    def _drop_if_empty(self, group: Group) -> None:
        key = (group.board, group.limit)
        if not len(group) and self._groups.get(key) is group:
            del self._groups[key]
            if len(self._left) >= 256:
                self._left.clear()
            self._left[key] = (group.current, group.checked)

    # -- introspection -------------------------------------------------------------------

    def count(self, transport: str) -> int:
        return sum(len(g.ws if transport == "ws" else g.sse) for g in self._groups.values())

    def groups(self) -> list[Group]:
        return list(self._groups.values())
