"""Forwarding end to end in one process: a `Forwarder` sends commands over a loopback
WebSocket to an `Intake` in front of a real writer, and hears each command's answer."""

from __future__ import annotations

import asyncio
import logging
from typing import cast

import orjson
import pytest

from scoreboard.cluster import forward, handshake
from scoreboard.cluster.forward import LOOKUP_FAILED, NONE_PUBLISHED, REFUSED, Forwarder
from scoreboard.cluster.handshake import cluster_key
from scoreboard.cluster.progress import Progress
from scoreboard.cluster.tail import Tail
from scoreboard.core import errors
from scoreboard.core.commands import ActionResult, SetFrozen, SubmitAction, UserResult
from scoreboard.core.engine import Engine
from scoreboard.core.records import ActionRecord
from scoreboard.runtime.watch import TaskWatch
from scoreboard.storage.base import StoreUnavailable
from scoreboard.storage.postgres.log import PostgresLog
from scoreboard.writer.actor import Overloaded, StoreDown
from tests.cluster.conftest import KEY, LIMIT, SECRET, Cluster, Heard
from tests.writer.test_writer import RULES, _all, act


async def test_concurrent_submits_are_answered_in_fewer_frames(cluster: Cluster) -> None:
    """Each caller gets its own result; what waits together goes out together."""
    _, units = await cluster.intake()
    fwd = cluster.forwarder()
    n = 200
    results = await asyncio.wait_for(
        asyncio.gather(*(fwd.submit(act(f"u{i}", "c1")) for i in range(n))), LIMIT
    )
    for i, r in enumerate(results):
        assert isinstance(r, ActionResult) and not r.replayed
        assert (r.user_id, r.delta, r.new_score) == (f"u{i}", 10, 10)
        assert cluster.engine.last_seq >= r.seq  # read-your-writes: applied here
    assert sorted(r.seq for r in results) == list(range(1, n + 1))
    assert sum(units.sizes) == n and len(units.sizes) < n
    records = {r.seq: r.user_id for r in await _all(cluster.store)}
    assert all(records[r.seq] == r.user_id for r in results)
    assert fwd.writer_url == cluster.url


async def test_a_refusal_comes_back_as_the_same_class(cluster: Cluster) -> None:
    """The writer's refusal is raised to the caller as its class, code and message."""
    await cluster.intake()
    fwd = cluster.forwarder()
    with pytest.raises(errors.UnknownAction) as unknown:
        await fwd.submit(act("amy", "c1", "NOPE"))
    assert unknown.value.code == "UNKNOWN_ACTION" and "NOPE" in unknown.value.message
    with pytest.raises(errors.NotFound):
        await fwd.submit(SetFrozen("bob", "admin", True, "cheating"))
    assert isinstance(await fwd.submit(act("bob", "c1")), ActionResult)
    frozen = await fwd.submit(SetFrozen("bob", "admin", True, "cheating"))
    assert isinstance(frozen, UserResult) and frozen.frozen and frozen.seq == 2
    with pytest.raises(errors.UserFrozen) as refused:
        await fwd.submit(act("bob", "c2"))
    assert refused.value.code == "USER_FROZEN"
    other = SubmitAction("bob", "Bob", "global", "COMPLETE_LEVEL", "c1", metadata={"x": 1})
    with pytest.raises(errors.IdempotencyConflict):
        await fwd.submit(other)
    assert [r.seq for r in await _all(cluster.store)] == [1, 2]


async def test_a_wrong_key_never_gets_through(cluster: Cluster) -> None:
    """Refused at the challenge, again on every retry; from the first refusal on, a
    command is refused at once (503, the reason said, no address) instead of waiting."""
    _, units = await cluster.intake()
    with Heard("scoreboard.cluster", "a wrong answer to the challenge") as refused:
        fwd = cluster.forwarder(key=cluster_key(b"another secret"), timeout=600.0)
        await refused.times(2)  # a first attempt and at least one retry
    assert fwd.state == "unreachable" and fwd.unreachable == REFUSED
    with pytest.raises(StoreDown) as info:
        await asyncio.wait_for(fwd.submit(act("amy", "c1")), LIMIT)  # not after 600 s
    assert "no writer is reachable" in info.value.message and "cluster.secret" in (
        info.value.message)
    assert info.value.code == "STORE_UNAVAILABLE" and info.value.retry_after >= 1
    assert cluster.url is not None and cluster.url not in info.value.message
    assert fwd.writer_url is None and units.sizes == [] and cluster.engine.last_seq == 0


async def test_the_handshake_logs_neither_the_key_nor_the_answer(
        cluster: Cluster, caplog: pytest.LogCaptureFixture) -> None:
    """Everything logged at DEBUG (websockets' own loggers too) while a follower is
    admitted and forwards: no trace of the secret, the key or the answer."""
    caplog.set_level(logging.DEBUG)
    nonce = bytes(range(handshake.NONCE_BYTES))
    await cluster.intake(nonce=lambda n: nonce[:n])
    with caplog.at_level(logging.DEBUG, logger="websockets"):
        fwd = cluster.forwarder()
        result = await asyncio.wait_for(fwd.submit(act("amy", "c1")), LIMIT)
    assert isinstance(result, ActionResult) and fwd.state == "connected"
    logged = caplog.text
    assert "forwarding writes to" in logged  # the capture did see the connection
    reply = orjson.loads(handshake.answer(KEY, nonce))[1]
    for secret in (SECRET.decode(), KEY.hex(), reply):
        for piece in (secret, secret[:12], secret[-12:]):  # frames are logged elided
            assert piece not in logged


async def test_a_sender_that_fails_is_a_crash_and_leaves_nobody_waiting(
        cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure of the forwarder that is not its connection's (here a bug in encoding)
    ends its task, which the task watch reports as a crash (`/ready`, the exit code);
    the caller is answered at once, and so is every later one."""
    await cluster.intake()
    fwd = Forwarder(cluster.locate, KEY, cluster.progress, cluster.rank_of,
                    timeout=600.0, batch=256, wait_applied=LIMIT)
    watch = TaskWatch()
    watch.start("forwarder", fwd.run())
    await asyncio.wait_for(fwd.settled.wait(), LIMIT)
    assert fwd.state == "connected"

    def broken(items: object) -> tuple[bytes, list[object]]:
        raise RuntimeError("a bug in encoding")

    monkeypatch.setattr(forward, "encode_commands", broken)
    with pytest.raises(StoreDown) as info:
        await asyncio.wait_for(fwd.submit(act("amy", "c1")), LIMIT)
    assert info.value.message == forward.STOPPED
    await asyncio.wait_for(watch.crashed.wait(), LIMIT)
    assert watch.failed == ["forwarder"] and watch.states() == {"forwarder": "failed"}
    with pytest.raises(StoreDown):
        await asyncio.wait_for(fwd.submit(act("bob", "c1")), LIMIT)
    assert fwd.state == "unreachable" and cluster.engine.last_seq == 0


async def test_too_many_waiting_is_overloaded_at_once(cluster: Cluster) -> None:
    """Past `max_waiting` a command is refused without being sent."""
    _, units = await cluster.intake()
    units.hold()
    fwd = cluster.forwarder(max_waiting=2)
    first = [asyncio.create_task(fwd.submit(act(f"u{i}", "c"))) for i in range(2)]
    await units.arrived(1)
    with pytest.raises(Overloaded) as info:
        await fwd.submit(act("late", "c"))
    assert info.value.retry_after >= 1
    units.release()
    done = await asyncio.wait_for(asyncio.gather(*first), LIMIT)
    assert [r.seq for r in done] == [1, 2] and sum(units.sizes) == 2
    assert isinstance(await fwd.submit(act("late", "c")), ActionResult)  # room again


async def test_no_answer_in_time_is_store_down(cluster: Cluster) -> None:
    """A writer that takes the frame and never answers: 503 after `timeout`; its late
    answer is dropped and the connection goes on."""
    _, units = await cluster.intake()
    units.hold()
    fwd = cluster.forwarder(timeout=0.2)
    with pytest.raises(StoreDown) as info:
        await fwd.submit(act("amy", "c1"))
    assert info.value.code == "STORE_UNAVAILABLE" and info.value.retry_after >= 1
    assert units.sizes == [1]
    units.release()
    later = await asyncio.wait_for(fwd.submit(act("bob", "c1")), LIMIT)
    assert isinstance(later, ActionResult) and later.seq == 2  # amy's was decided, late


async def test_no_writer_to_be_found_is_store_down_at_once(
        cluster: Cluster, caplog: pytest.LogCaptureFixture) -> None:
    """Nobody published a writer: a command is refused at once with the reason; once a
    writer publishes, the forwarder finds it by itself and commands go through."""
    caplog.set_level(logging.INFO, logger="scoreboard.cluster")
    with Heard("scoreboard.cluster", NONE_PUBLISHED) as looked:
        fwd = cluster.forwarder(timeout=600.0)
        await looked.times(1)
    assert cluster.url is None and fwd.state == "unreachable"
    with pytest.raises(StoreDown) as info:
        await asyncio.wait_for(fwd.submit(act("amy", "c1")), LIMIT)
    assert info.value.message == f"no writer is reachable to forward this action to: " \
                                 f"{NONE_PUBLISHED}"
    assert looked.count == 1  # logged when the reason changed, not on every lookup
    with Heard("scoreboard.cluster", "forwarding writes to") as connected:
        await cluster.intake()
        await connected.times(1)
    assert fwd.state == "connected" and fwd.unreachable is None
    result = await asyncio.wait_for(fwd.submit(act("amy", "c1")), LIMIT)
    assert isinstance(result, ActionResult) and result.seq == 1


async def test_a_failed_lookup_is_retried(cluster: Cluster) -> None:
    """The writer's address cannot be read for a while (the database is out): logged,
    looked up again, and the command waits for it as for any store outage."""
    await cluster.intake()
    url, lookups = cluster.url, 0

    async def flaky() -> str | None:
        nonlocal lookups
        lookups += 1
        if lookups < 3:
            raise StoreUnavailable("the log is down")
        return url

    cluster.locate = flaky  # type: ignore[method-assign]
    with Heard("scoreboard.cluster", LOOKUP_FAILED) as heard:
        fwd = cluster.forwarder()
        result = await asyncio.wait_for(fwd.submit(act("amy", "c1")), LIMIT)
    assert isinstance(result, ActionResult) and lookups == 3
    assert heard.count == 1  # logged when it began, not again while it lasted


async def test_a_lost_writer_resends_keyed_commands_and_refuses_the_rest(
        cluster: Cluster) -> None:
    """The connection breaks before the answers: a command with a client action id is
    sent again to the next writer and applied once; one without a key gets 503."""
    first, held = await cluster.intake()
    fwd = cluster.forwarder()
    assert isinstance(await fwd.submit(act("bob", "c1")), ActionResult)
    held.hold()
    keyed = asyncio.create_task(fwd.submit(act("amy", "k1")))
    unkeyed = asyncio.create_task(fwd.submit(SetFrozen("bob", "admin", True, "why")))
    await held.arrived(2)
    assert held.sizes == [1, 2]  # both in one frame, its answer held back
    _, units = await cluster.intake()  # where `locate` points from now on
    stopping = asyncio.create_task(first.stop())  # closes the follower's connection
    with pytest.raises(StoreDown) as info:
        await asyncio.wait_for(unkeyed, LIMIT)
    assert "may or may not" in info.value.message
    held.release()  # the old writer side decides the frame; its answer has no one to go to
    result = await asyncio.wait_for(keyed, LIMIT)
    await asyncio.wait_for(stopping, LIMIT)
    assert units.sizes == [1]  # only the keyed command went out again
    assert isinstance(result, ActionResult) and result.replayed  # the first copy won
    amy = [r for r in await _all(cluster.store)
           if isinstance(r, ActionRecord) and r.client_action_id == "k1"]
    assert [r.seq for r in amy] == [result.seq]
    assert cluster.engine.boards["global"].score("amy") == 10  # applied exactly once
    assert "bob" in cluster.engine.frozen  # it landed all the same
    assert fwd.writer_url == cluster.url


async def test_frames_in_flight_bound_what_waits_for_an_answer(cluster: Cluster) -> None:
    """At most `frames_in_flight` frames await their answer; commands arriving
    meanwhile gather into one frame, sent when an answer frees a place."""
    _, units = await cluster.intake()
    units.hold()
    fwd = cluster.forwarder(frames_in_flight=2)
    tasks = [asyncio.create_task(fwd.submit(act("a", "c")))]
    await units.arrived(1)
    tasks.append(asyncio.create_task(fwd.submit(act("b", "c"))))
    await units.arrived(2)
    for i in range(10):
        tasks.append(asyncio.create_task(fwd.submit(act(f"u{i}", "c"))))
        await asyncio.sleep(0)  # one loop step each: a sender free to send would send
    units.release()
    done = await asyncio.wait_for(asyncio.gather(*tasks), LIMIT)
    assert units.sizes == [1, 1, 10]
    assert sorted(r.seq for r in done) == list(range(1, 13))


async def test_a_frame_lingers_for_as_many_commands_as_the_last_one_carried(
        cluster: Cluster) -> None:
    """Under load the callers a frame answered come back: the next frame waits (at most
    `linger`) until as many commands wait, and goes as soon as they do."""
    _, units = await cluster.intake()
    fwd = cluster.forwarder(linger=10 * LIMIT)
    units.hold()
    first = [asyncio.create_task(fwd.submit(act(f"u{i}", "c1"))) for i in range(3)]
    await units.arrived(1)
    units.release()
    await asyncio.wait_for(asyncio.gather(*first), LIMIT)
    assert units.sizes == [3]
    again = [asyncio.create_task(fwd.submit(act("u0", "c2")))]
    for _ in range(10):
        await asyncio.sleep(0)  # one loop step each: a sender free to send would send
    assert units.sizes == [3]  # lingering: one command waits, the last frame carried 3
    again += [asyncio.create_task(fwd.submit(act(f"u{i}", "c2"))) for i in (1, 2)]
    await asyncio.wait_for(asyncio.gather(*again), LIMIT)
    assert units.sizes == [3, 3]


async def test_a_frame_lingers_for_the_callers_waiting_when_the_answer_came(
        cluster: Cluster) -> None:
    """Callers who queued while a frame was out count too: the next frame waits for
    them and for the ones the answer freed, so it carries all of them at once."""
    _, units = await cluster.intake()
    fwd = cluster.forwarder(linger=10 * LIMIT, frames_in_flight=1)
    units.hold()
    first = [asyncio.create_task(fwd.submit(act(f"u{i}", "c1"))) for i in range(2)]
    await units.arrived(1)
    queued = [asyncio.create_task(fwd.submit(act(f"u{i}", "c1"))) for i in (2, 3)]
    for _ in range(10):
        await asyncio.sleep(0)  # one loop step each: they queue behind the frame out
    units.release()
    await asyncio.wait_for(asyncio.gather(*first), LIMIT)
    for _ in range(10):
        await asyncio.sleep(0)
    assert units.sizes == [2]  # two wait, four callers: the frame lingers
    again = [asyncio.create_task(fwd.submit(act(f"u{i}", "c2"))) for i in range(2)]
    await asyncio.wait_for(asyncio.gather(*queued, *again), LIMIT)
    assert units.sizes == [2, 4]


async def test_a_lingering_frame_goes_after_linger_and_a_lone_caller_never_waits(
        cluster: Cluster) -> None:
    _, units = await cluster.intake()
    fwd = cluster.forwarder(linger=0.01)
    await asyncio.wait_for(asyncio.gather(*(fwd.submit(act(f"u{i}", "c1"))
                                            for i in range(3))), LIMIT)
    assert units.sizes == [3]
    await asyncio.wait_for(fwd.submit(act("u0", "c2")), LIMIT)  # alone, after linger
    lone = cluster.forwarder(linger=10 * LIMIT)
    for n in range(3):  # each frame carried one command: none lingers
        await asyncio.wait_for(lone.submit(act("amy", f"c{n}")), LIMIT)
    assert units.sizes == [3, 1, 1, 1, 1]


async def test_the_answer_waits_until_this_process_applied_it(cluster: Cluster) -> None:
    """A follower's caller is answered once its own engine has the seq (read your
    writes), here when the follower's tail catches up with the writer's log."""
    await cluster.intake()
    follower = Engine(RULES)
    asked = asyncio.Event()

    def applied() -> int:
        asked.set()  # read when the answer is in: the waiter registers right after
        return follower.last_seq

    progress = Progress(applied)
    # The tail reads only `scan`, which the memory log has like PostgreSQL's.
    tail = Tail(cast(PostgresLog, cluster.store), follower, [progress.on_commit],
                poll_interval=LIMIT)
    fwd = cluster.forwarder(progress=progress)
    task = asyncio.create_task(fwd.submit(act("amy", "c1")))
    await asyncio.wait_for(asked.wait(), LIMIT)
    assert not task.done() and cluster.engine.last_seq == 1 and follower.last_seq == 0
    assert await tail.catch_up() == 1
    result = await asyncio.wait_for(task, LIMIT)
    assert isinstance(result, ActionResult) and result.seq == follower.last_seq == 1
    assert follower.boards["global"].score("amy") == 10


async def test_the_wait_for_applying_is_bounded(cluster: Cluster) -> None:
    """A follower that does not catch up still answers after `wait_applied`."""
    await cluster.intake()
    fwd = cluster.forwarder(progress=Progress(lambda: 0), wait_applied=0.05)
    result = await asyncio.wait_for(fwd.submit(act("amy", "c1")), LIMIT)
    assert isinstance(result, ActionResult) and result.seq == 1
    assert result.rank is None  # not applied here: no rank this process could vouch for


async def test_the_follower_ranks_what_the_writer_sent_unranked(cluster: Cluster) -> None:
    """The writer answers forwarded units without a rank; the follower fills it in from
    its own engine once the seq is applied, exactly as a direct submit would rank it."""
    await cluster.intake()
    fwd = cluster.forwarder()
    ranks = []
    for user, cid in [("amy", "c1"), ("bob", "c2"), ("bob", "c3")]:
        result = await asyncio.wait_for(fwd.submit(act(user, cid)), LIMIT)
        assert isinstance(result, ActionResult)
        ranks.append(result.rank)
    assert ranks == [1, 2, 1]  # each as ranked when it was applied: bob tied, then led
    assert cluster.engine.boards["global"].rank("amy") == 2
    direct = await cluster.writer.writer.submit(act("amy", "c4"))
    assert isinstance(direct, ActionResult) and direct.rank == 2  # 20 too, reached later
    (unranked,) = await cluster.writer.writer.submit_many([act("cy", "c4")], ranked=False)
    assert isinstance(unranked, ActionResult) and unranked.rank is None
