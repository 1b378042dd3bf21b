"""The intake as a follower's peer sees it: a plain WebSocket client on loopback sends
frames, good and bad, and reads what comes back."""

from __future__ import annotations

import asyncio
import logging

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosedError, InvalidStatus

from scoreboard.cluster.wire import AUTH_HEADER, decode_results, encode_commands
from scoreboard.core import errors
from scoreboard.core.commands import ActionResult, SetFrozen
from scoreboard.storage.memory import MemoryLog
from scoreboard.writer.actor import Overloaded
from tests.cluster.conftest import CREDENTIAL, LIMIT, Cluster
from tests.writer.test_writer import Running, _all, act


def peer(cluster: Cluster, credential: str | None = CREDENTIAL) -> connect:
    """A raw client for the intake `locate` names, presenting `credential` (or none)."""
    assert cluster.url is not None
    headers = {} if credential is None else {AUTH_HEADER: credential}
    return connect(cluster.url, additional_headers=headers, open_timeout=LIMIT,
                   close_timeout=1.0)


async def exchange(ws: ClientConnection, frame: bytes) -> list[tuple[int, object]]:
    await ws.send(frame)
    return list(decode_results(await asyncio.wait_for(ws.recv(), LIMIT)))


@pytest.mark.parametrize("credential", [None, "", "x" * 64, CREDENTIAL[:-1]])
async def test_no_or_a_wrong_credential_is_403_at_the_handshake(
        cluster: Cluster, credential: str | None, caplog: pytest.LogCaptureFixture) -> None:
    """The handshake itself is refused: nothing reaches the writer."""
    _, units = await cluster.intake()
    with pytest.raises(InvalidStatus) as info:
        async with peer(cluster, credential):
            pass
    assert info.value.response.status_code == 403
    assert b"credential" in info.value.response.body
    assert "refused an internal connection" in caplog.text
    assert units.sizes == []


async def test_the_right_credential_is_answered_frame_by_frame(cluster: Cluster) -> None:
    """Each frame is one unit for the writer and one answer frame, ids echoed."""
    _, units = await cluster.intake()
    async with peer(cluster) as ws:
        first = await exchange(ws, encode_commands([(7, act("amy", "c1")),
                                                    (9, act("bob", "c1"))]))
        second = await exchange(ws, encode_commands([(8, act("amy", "c1"))]))
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
        await ws.send(frame)
        with pytest.raises(ConnectionClosedError) as info:
            await asyncio.wait_for(ws.recv(), LIMIT)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1008
    assert "not a command frame" in info.value.rcvd.reason
    assert units.sizes == []


async def test_one_malformed_command_is_refused_alone(cluster: Cluster) -> None:
    """In a well-formed frame a command that does not decode is `InvalidCommand`; the
    others are decided as usual, in one unit without it."""
    _, units = await cluster.intake()
    good = orjson.loads(encode_commands([(1, act("amy", "c1")), (4, act("bob", "c1"))]))
    frame = orjson.dumps([*good[:2], 2, ["NoSuchCommand", "x"], 3, ["SetFrozen"], *good[2:]])
    async with peer(cluster) as ws:
        out = dict(await exchange(ws, frame))
        only_bad = await exchange(ws, orjson.dumps([5, ["SetFrozen", "amy"]]))
    assert sorted(out) == [1, 2, 3, 4]
    assert isinstance(out[1], ActionResult) and isinstance(out[4], ActionResult)
    for i in (2, 3):
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
            out = await exchange(ws, encode_commands(
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
        await ws.send(encode_commands([(1, act("amy", "c1"))]))
        await units.arrived(1)
        ws.transport.abort()  # no close frame: the intake reads a broken connection
    units.release()
    await asyncio.wait_for(intake.stop(), LIMIT)  # waits for the connection's handler
    assert [r.user_id for r in await _all(cluster.store)] == ["amy"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
