"""The intake as a follower's peer sees it: a plain WebSocket client on loopback sends
frames, good and bad, and reads what comes back."""

from __future__ import annotations

import asyncio
import logging

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosedError

from scoreboard.cluster import handshake
from scoreboard.cluster.handshake import cluster_key
from scoreboard.cluster.wire import decode_results, encode_commands
from scoreboard.core import errors
from scoreboard.core.commands import ActionResult, Command, SetFrozen, SubmitAction
from scoreboard.storage.memory import MemoryLog
from scoreboard.writer.actor import Overloaded
from tests.cluster.conftest import KEY, LIMIT, Cluster
from tests.writer.test_writer import Running, _all, act

BIG = SubmitAction("amy", "Amy", "global", "COMPLETE_LEVEL", "c1", {"note": "y" * 2000})


def peer(cluster: Cluster) -> connect:
    """A raw client for the intake `locate` names."""
    assert cluster.url is not None
    return connect(cluster.url, open_timeout=LIMIT, close_timeout=1.0)


async def admitted(ws: ClientConnection, key: bytes = KEY) -> bytes:
    """Answer the challenge with `key`, as a follower does; returns the answer frame."""
    nonce = handshake.read_challenge(await asyncio.wait_for(ws.recv(), LIMIT))
    reply = handshake.answer(key, nonce)
    await ws.send(reply)
    assert handshake.is_welcome(await asyncio.wait_for(ws.recv(), LIMIT))
    return reply


async def refused(ws: ClientConnection, reply: bytes) -> ConnectionClosedError:
    """Send `reply` to the challenge; the intake closes the connection."""
    await asyncio.wait_for(ws.recv(), LIMIT)  # the challenge
    await ws.send(reply)
    with pytest.raises(ConnectionClosedError) as info:
        await asyncio.wait_for(ws.recv(), LIMIT)
    return info.value


def frame(items: list[tuple[int, Command]]) -> bytes:
    out, refusals = encode_commands(items)
    assert out is not None and refusals == []
    return out


async def exchange(ws: ClientConnection, sent: bytes) -> list[tuple[int, object]]:
    await ws.send(sent)
    return list(decode_results(await asyncio.wait_for(ws.recv(), LIMIT)))


@pytest.mark.parametrize("reply", [
    handshake.answer(cluster_key(b"another secret"), b"\0" * handshake.NONCE_BYTES),
    b'["answer", ""]', b'["answer", "zz"]', b'["answer"]', b"{", b"[]",
    frame([(1, act("amy", "c1"))]),  # commands before the handshake
], ids=["wrong-key", "empty", "not-hex", "no-value", "not-json", "empty-array", "commands"])
async def test_a_wrong_answer_is_closed_with_1008(
        cluster: Cluster, reply: bytes, caplog: pytest.LogCaptureFixture) -> None:
    """The challenge answered wrongly: closed as a policy error; nothing reaches the
    writer."""
    _, units = await cluster.intake()
    async with peer(cluster) as ws:
        closed = await refused(ws, reply)
    assert closed.rcvd is not None and closed.rcvd.code == 1008
    assert closed.rcvd.reason == "authentication failed"
    assert "a wrong answer to the challenge" in caplog.text
    assert units.sizes == []


async def test_a_wrong_key_is_refused_even_with_the_right_nonce(cluster: Cluster) -> None:
    """The answer is bound to the key: the right nonce with another key is refused."""
    _, units = await cluster.intake()
    async with peer(cluster) as ws:
        nonce = handshake.read_challenge(await asyncio.wait_for(ws.recv(), LIMIT))
        await ws.send(handshake.answer(cluster_key(b"another secret"), nonce))
        with pytest.raises(ConnectionClosedError) as info:
            await asyncio.wait_for(ws.recv(), LIMIT)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1008
    assert units.sizes == []


async def test_a_recorded_answer_is_worth_nothing_on_another_connection(
        cluster: Cluster) -> None:
    """Each connection has its own nonce: an answer seen on the wire cannot be replayed."""
    _, units = await cluster.intake()
    async with peer(cluster) as ws:
        recorded = await admitted(ws)
    async with peer(cluster) as ws:
        closed = await refused(ws, recorded)
    assert closed.rcvd is not None and closed.rcvd.code == 1008
    assert units.sizes == []


async def test_no_answer_in_time_is_closed(cluster: Cluster,
                                           caplog: pytest.LogCaptureFixture) -> None:
    """A peer that connects and says nothing is not kept."""
    await cluster.intake(handshake_seconds=0.1)
    async with peer(cluster) as ws:
        await asyncio.wait_for(ws.recv(), LIMIT)  # the challenge; no answer
        with pytest.raises(ConnectionClosedError) as info:
            await asyncio.wait_for(ws.recv(), LIMIT)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1008
    assert "no answer to the challenge in time" in caplog.text


async def test_a_large_frame_before_the_handshake_is_refused(cluster: Cluster) -> None:
    """Before it is authenticated a peer may send a handshake's worth, not 16 MiB."""
    _, units = await cluster.intake()
    async with peer(cluster) as ws:
        closed = await refused(ws, b"[" + b" " * handshake.HANDSHAKE_MAX_BYTES + b"]")
    assert closed.rcvd is not None and closed.rcvd.code == 1009  # message too big
    assert units.sizes == []


async def test_the_right_answer_is_welcomed_and_answered_frame_by_frame(
        cluster: Cluster) -> None:
    """Once admitted, each frame is one unit for the writer and one answer frame, ids
    echoed; frames larger than a handshake's are taken again."""
    _, units = await cluster.intake()
    async with peer(cluster) as ws:
        await admitted(ws)
        first = await exchange(ws, frame([(7, BIG), (9, act("bob", "c1"))]))
        second = await exchange(ws, frame([(8, BIG)]))
    assert [i for i, _ in first] == [7, 9] and [i for i, _ in second] == [8]
    (_, a), (_, b), (_, again) = *first, *second
    assert isinstance(a, ActionResult) and isinstance(b, ActionResult)
    assert (a.seq, b.seq) == (1, 2)
    assert isinstance(again, ActionResult) and again.replayed and again.seq == 1
    assert units.sizes == [2, 1]


@pytest.mark.parametrize("frame", [b"{", b'{"commands": []}', b"[1]", b'["x", []]', b"null"])
async def test_a_malformed_frame_closes_the_connection_with_1008(
        cluster: Cluster, frame: bytes) -> None:
    """A frame that is not `[id, command, …]` ends the connection as a policy error."""
    _, units = await cluster.intake()
    async with peer(cluster) as ws:
        await admitted(ws)
        await ws.send(frame)
        with pytest.raises(ConnectionClosedError) as info:
            await asyncio.wait_for(ws.recv(), LIMIT)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1008
    assert "not a command frame" in info.value.rcvd.reason
    assert units.sizes == []


async def test_one_malformed_command_is_refused_alone(cluster: Cluster) -> None:
    """In a well-formed frame a command that does not decode (an unknown kind, missing
    fields, a field of the wrong type) is `InvalidCommand`; the others are decided as
    usual, in one unit without it: the writer never sees a command that does not fit."""
    _, units = await cluster.intake()
    good = orjson.loads(frame([(1, act("amy", "c1")), (4, act("bob", "c1"))]))
    mixed = orjson.dumps([*good[:2], 2, ["NoSuchCommand", "x"], 3, ["SetFrozen"],
                          6, ["AdjustScore", "amy", "admin", "global", "5", "typo", "a1"],
                          7, ["SetFrozen", "bob", "admin", 1, "why"], *good[2:]])
    async with peer(cluster) as ws:
        await admitted(ws)
        out = dict(await exchange(ws, mixed))
        only_bad = await exchange(ws, orjson.dumps([5, ["SetFrozen", "amy"]]))
    assert sorted(out) == [1, 2, 3, 4, 6, 7]
    assert isinstance(out[1], ActionResult) and isinstance(out[4], ActionResult)
    assert "AdjustScore.delta" in out[6].message  # type: ignore[attr-defined]
    for i in (2, 3, 6, 7):
        refusal = out[i]
        assert isinstance(refusal, errors.InvalidCommand)
        assert refusal.code == "INVALID_REQUEST" and "not a command" in refusal.message
    (i, bad), = only_bad
    assert i == 5 and isinstance(bad, errors.InvalidCommand)
    assert units.sizes == [2]  # a frame with nothing well-formed never reaches the writer
    assert [r.user_id for r in await _all(cluster.store)] == ["amy", "bob"]


async def test_a_unit_refused_as_a_whole_refuses_each_command() -> None:
    """The writer refuses the unit (its queue has no room): every command hears so."""
    running = Running(MemoryLog(), queue_size=2)
    await running.start()
    cluster = Cluster(running)
    try:
        await cluster.intake()
        async with peer(cluster) as ws:
            await admitted(ws)
            out = await exchange(ws, frame(
                [(i, SetFrozen(f"u{i}", "admin", True, "r")) for i in range(1, 4)]))
        assert [i for i, _ in out] == [1, 2, 3]
        assert all(isinstance(r, Overloaded) and r.retry_after for _, r in out)
        assert running.engine.last_seq == 0
    finally:
        await cluster.close()


async def test_a_peer_lost_mid_frame_ends_its_handler_cleanly(
        cluster: Cluster, caplog: pytest.LogCaptureFixture) -> None:
    """A follower whose connection drops without a closing handshake (a crash, a cut
    cable): the frame it sent is still decided, as after a clean close, and the
    connection's handler ends without an error."""
    intake, units = await cluster.intake()
    units.hold()
    async with peer(cluster) as ws:
        await admitted(ws)
        await ws.send(frame([(1, act("amy", "c1"))]))
        await units.arrived(1)
        ws.transport.abort()  # no close frame: the intake reads a broken connection
    units.release()
    await asyncio.wait_for(intake.stop(), LIMIT)  # waits for the connection's handler
    assert [r.user_id for r in await _all(cluster.store)] == ["amy"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
