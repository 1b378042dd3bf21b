"""The hub's fan-out rules, with connections faked down to the few attributes it uses:
coalescing, "only when the top N changed", newest-only for clients that are behind,
the buffer cap and the stall limit. No event loop, no sockets."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from websockets.frames import Frame
from websockets.streams import StreamReader

from scoreboard.core.engine import Engine
from scoreboard.core.rules import RuleSet
from scoreboard.live.hub import Hub
from scoreboard.read.views import Views
from scoreboard.runtime.metrics import Metrics
from scoreboard.settings.model import load_settings

CAP = 4096
STALL = 5.0


class FakeSink:
    """A viewer as the hub sees it: the `Sink` interface, and what was done to it."""

    def __init__(self, name: str) -> None:
        self.id = name
        self.pending = 0  # bytes the "kernel" has not sent yet
        self.written: list[bytes] = []
        self.aborted = False
        self.open = True

    def is_open(self) -> bool:
        return self.open and not self.aborted

    def buffered(self) -> int:
        return self.pending

    def write(self, frame: bytes) -> None:
        self.written.append(frame)

    def abort(self) -> None:
        self.aborted = True

    def updates(self) -> list[dict[str, Any]]:
        out = []
        for raw in self.written:
            reader = StreamReader()
            reader.feed_data(raw)
            parser = Frame.parse(reader.read_exact, mask=False)
            try:
                next(parser)
            except StopIteration as done:
                out.append(orjson.loads(done.value.data)["data"])
        return out

    def tops(self) -> list[list[str]]:
        return [[e["userId"] for e in u["top"]] for u in self.updates()]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def engine() -> Engine:
    e = Engine(RuleSet.from_config({"COMPLETE_LEVEL": {"points": 10}}), ("global", "other"))
    ranking = e.boards["global"]
    for seq, (user, score) in enumerate([("ann", 50), ("bob", 40), ("cy", 30), ("dee", 20)], 1):
        ranking.set(user, score, seq)
    e.last_seq = 4  # as if these four were the log so far
    return e


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def hub(engine: Engine, clock: Clock) -> Hub:
    live = load_settings({"live.send_buffer_cap": CAP, "live.stall_seconds": STALL},
                         environ={}).live
    return Hub(Views(engine), live, Metrics(), clock=clock)


def score(engine: Engine, user: str, value: int, board: str = "global") -> None:
    engine.last_seq += 1
    engine.boards[board].set(user, value, engine.last_seq)


def join(hub: Hub, name: str, limit: int = 2, board: str = "global") -> FakeSink:
    conn = FakeSink(name)
    hub.join_ws(conn, board, limit)  # type: ignore[arg-type]
    return conn


def test_snapshot_on_join_then_only_changes_of_the_top_n(hub: Hub, engine: Engine) -> None:
    a = join(hub, "a")
    assert a.tops() == [["ann", "bob"]]
    score(engine, "dee", 25)  # below the top 2: the version moves, the top does not
    hub.flush()
    assert len(a.updates()) == 1
    score(engine, "cy", 45)  # into the top 2
    hub.flush()
    assert a.tops()[-1] == ["ann", "cy"]
    assert a.updates()[-1]["version"] == engine.boards["global"].version


def test_changes_between_flushes_are_coalesced_into_one_update(hub: Hub, engine: Engine) -> None:
    a = join(hub, "a")
    for value in (60, 70, 80):
        score(engine, "dee", value)
    hub.flush()
    hub.flush()  # nothing new: nothing sent
    assert a.tops() == [["ann", "bob"], ["dee", "ann"]]
    assert a.updates()[-1]["top"][0]["score"] == 80


def test_one_frame_object_for_every_client_of_a_group(hub: Hub, engine: Engine) -> None:
    conns = [join(hub, f"c{i}") for i in range(5)]
    other = join(hub, "x", limit=3)
    score(engine, "dee", 99)
    hub.flush()
    frames = {id(c.written[-1]) for c in conns}
    assert len(frames) == 1  # encoded once, the same bytes object written to all
    assert other.tops()[-1] == ["dee", "ann", "bob"]


def test_a_client_behind_gets_only_the_newest_top_once_it_drains(
    hub: Hub, engine: Engine, clock: Clock
) -> None:
    slow, fast = join(hub, "slow"), join(hub, "fast")
    slow.pending = 100  # unsent bytes: the client is behind
    for value in (60, 70, 80):
        score(engine, "dee", value)
        hub.flush()
        clock.now += 0.05
    assert len(fast.updates()) == 4 and len(slow.updates()) == 1
    slow.pending = 0
    hub.flush()
    assert len(slow.updates()) == 2  # no backlog: one message, the newest
    assert slow.updates()[-1] == fast.updates()[-1]
    assert not slow.aborted


def test_a_client_past_the_buffer_cap_is_cut_off_and_others_go_on(
    hub: Hub, engine: Engine
) -> None:
    slow, fast = join(hub, "slow"), join(hub, "fast")
    slow.pending = CAP + 1
    score(engine, "dee", 60)
    hub.flush()
    assert slow.aborted and hub.cut_off == 1
    assert fast.tops()[-1] == ["dee", "ann"]


def test_a_client_that_stays_behind_is_cut_off_after_the_stall_limit(
    hub: Hub, engine: Engine, clock: Clock
) -> None:
    slow = join(hub, "slow")
    slow.pending = 10
    score(engine, "dee", 60)
    hub.flush()
    clock.now += STALL - 0.1
    hub.flush()
    assert not slow.aborted
    clock.now += 0.2
    hub.flush()
    assert slow.aborted


def test_closed_connections_are_skipped(hub: Hub, engine: Engine) -> None:
    a = join(hub, "a")
    a.open = False
    score(engine, "dee", 60)
    hub.flush()
    assert len(a.updates()) == 1


def test_a_joiner_ahead_of_its_group_ends_on_the_group_state(hub: Hub, engine: Engine) -> None:
    a = join(hub, "a")
    score(engine, "dee", 60)  # the top moved; the group has not broadcast it yet
    b = join(hub, "b")
    assert b.tops() == [["dee", "ann"]]
    hub.flush()
    assert a.tops()[-1] == ["dee", "ann"]
    assert len(b.updates()) == 1  # already had exactly this version

    score(engine, "cy", 70)  # moves again …
    c = join(hub, "c")
    assert c.tops() == [["cy", "dee"]]
    score(engine, "cy", 1)  # … and back before the flush
    hub.flush()
    assert a.tops()[-1] == ["dee", "ann"] and len(a.updates()) == 2  # nothing changed for a
    assert c.tops()[-1] == ["dee", "ann"]  # c is brought back to what everyone has


def test_sse_clients_are_woken_and_last_event_id_skips_the_snapshot(
    hub: Hub, engine: Engine
) -> None:
    client, snapshot = hub.join_sse("global", 2, None)
    assert snapshot is not None and snapshot.version == engine.boards["global"].version
    again, none = hub.join_sse("global", 2, snapshot.version)
    assert none is None
    _, stale = hub.join_sse("global", 2, snapshot.version - 1)
    assert stale is not None
    assert not client.wake.is_set()
    score(engine, "dee", 60)
    hub.flush()
    assert client.wake.is_set() and again.wake.is_set()
    assert client.group.current.top[0]["userId"] == "dee"


def test_groups_go_away_with_their_last_client(hub: Hub) -> None:
    conn = FakeSink("a")
    client = hub.join_ws(conn, "global", 2)  # type: ignore[arg-type]
    sse, _ = hub.join_sse("other", 5, None)
    assert hub.count("ws") == 1 and hub.count("sse") == 1 and len(hub.groups()) == 2
    hub.leave_ws(client)
    hub.leave_sse(sse)
    assert hub.count("ws") == 0 and hub.groups() == []
    assert sse.closed


def test_close_sse_ends_every_stream(hub: Hub) -> None:
    clients = [hub.join_sse("global", 2, None)[0] for _ in range(3)]
    hub.close_sse()
    assert all(c.closed and c.wake.is_set() for c in clients)


def test_joiners_ahead_of_the_group_share_one_snapshot(hub: Hub, engine: Engine) -> None:
    a = join(hub, "a")
    score(engine, "dee", 60)  # the top moved; the group has not broadcast it yet
    b, c = join(hub, "b"), join(hub, "c")
    client, snapshot = hub.join_sse("global", 2, None)
    assert snapshot is not None and snapshot.version == engine.boards["global"].version
    assert b.written[-1] is c.written[-1] is snapshot.ws_frame  # built once for all
    hub.flush()
    group = client.group
    assert group.current is snapshot  # and it is what the group broadcasts
    assert a.written[-1] is snapshot.ws_frame
    assert len(b.updates()) == len(c.updates()) == 1  # they had it already
    score(engine, "cy", 90)  # a later change gets a view of its own
    _, view = hub.join_sse("global", 2, None)
    assert view is not None and view is not snapshot and view.version > snapshot.version
    assert [e["userId"] for e in view.top] == ["cy", "dee"]


def test_a_group_that_comes_back_reuses_its_view_while_the_board_stands(
    hub: Hub, engine: Engine
) -> None:
    client, first = hub.join_sse("global", 2, None)
    hub.leave_sse(client)
    assert hub.groups() == []
    client, again = hub.join_sse("global", 2, None)
    assert again is first  # the same encoded bytes, not a new encoding
    hub.leave_sse(client)
    score(engine, "dee", 60)  # the board moved meanwhile: a view of its own
    client, moved = hub.join_sse("global", 2, None)
    assert moved is not None and moved is not first
    assert moved.version == engine.boards["global"].version
    assert [e["userId"] for e in moved.top] == ["dee", "ann"]
    conn = join(hub, "a", limit=3)  # another limit is another group
    assert conn.tops() == [["dee", "ann", "bob"]]
