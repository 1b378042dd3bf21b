"""scoreboard.client against real servers: retries that keep the clientActionId, waits
as long as Retry-After says, typed errors and replies, and an event feed that resumes
after the service went away, without a gap or a repeat."""

from __future__ import annotations

import asyncio
import re
import signal
import time
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from pathlib import Path

import jwt
import pytest

from scoreboard.client import (
    ActionResult,
    BatchAction,
    ItemError,
    RetryNote,
    ScoreboardClient,
    ScoreboardConnectionError,
    ScoreboardError,
)
from tests.integration.conftest import SECRET, Running, ServerFactory
from tests.integration.test_crash import free_port, server_process

SERVICE = ("scoreboard:service",)
ID_RE = re.compile(rb'"clientActionId":"([^"]+)"')


class CuttingProxy:
    """A TCP proxy in front of the server that drops the first `cuts` answers once
    their first bytes have come back: the server handled the request, the client never
    hears about it. It keeps every byte the client sent."""

    def __init__(self, upstream_port: int, cuts: int) -> None:
        self.upstream_port = upstream_port
        self.cuts = cuts
        self.sent = b""
        self.connections = 0
        self._transports: set[asyncio.BaseTransport] = set()
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    def client_action_ids(self) -> list[str]:
        return [m.decode() for m in ID_RE.findall(self.sent)]

    async def __aenter__(self) -> CuttingProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for transport in self._transports:
            transport.abort()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        self._transports |= {writer.transport, up_writer.transport}
        cut = self.cuts > 0
        self.cuts -= cut

        async def upward() -> None:
            while data := await reader.read(65536):
                self.sent += data
                up_writer.write(data)
            up_writer.close()

        pump = asyncio.create_task(upward())
        try:
            while data := await up_reader.read(65536):
                if cut:
                    break  # answered, and the answer is lost
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.transport.abort()
            up_writer.transport.abort()
            pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)


def client_for(server: Running, url: str | None = None, **kw: object) -> ScoreboardClient:
    options: dict[str, object] = {"token": server.token("backend", scopes=SERVICE),
                                  "random": lambda: 0.0}  # backoff draws no wait
    options.update(kw)
    return ScoreboardClient(url or server.url, **options)  # type: ignore[arg-type]


async def test_an_action_id_is_made_once_and_sent_again_after_a_lost_answer(
    server: Running,
) -> None:
    notes: list[RetryNote] = []
    async with CuttingProxy(server.service.http_port, cuts=1) as proxy, \
            client_for(server, proxy.url, on_retry=notes.append) as client:
        result = await client.submit_action("COMPLETE_LEVEL", token=server.token("amy"))
        assert isinstance(result, ActionResult)
        assert (result.user_id, result.delta, result.new_score, result.replayed) == (
            "amy", 10, 10, True)  # the first try was committed: the retry is its replay
        ids = proxy.client_action_ids()
        assert len(ids) == 2 and ids[0] == ids[1] and len(ids[0]) == 36  # a uuid4
        assert [type(n.error) for n in notes] == [ScoreboardConnectionError]
        score = await client.user_score("amy")
        assert (score.score, score.rank, score.total_users) == (10, 1, 1)  # rose once


async def test_a_batch_is_retried_whole_with_the_same_ids(server: Running) -> None:
    actions = [BatchAction("bo", "COMPLETE_LEVEL"), BatchAction("cy", "WIN_MATCH"),
               BatchAction("di", "COMPLETE_LEVEL", client_action_id="mine-1",
                           display_name="Di", metadata={"match": 7}),
               BatchAction("bo", "NO_SUCH_ACTION")]
    async with CuttingProxy(server.service.http_port, cuts=1) as proxy, \
            client_for(server, proxy.url) as client:
        results = await client.submit_batch(actions)
        ids = proxy.client_action_ids()
        assert len(ids) == 8 and ids[:4] == ids[4:] and ids[2] == "mine-1"
        assert len(set(ids[:4])) == 4
        accepted = [r for r in results if isinstance(r, ActionResult)]
        assert [(r.user_id, r.new_score, r.replayed) for r in accepted] == [
            ("bo", 10, True), ("cy", 20, True), ("di", 10, True)]
        refused = results[3]
        assert isinstance(refused, ItemError)
        assert (refused.status, refused.code) == (400, "UNKNOWN_ACTION")
        top = await client.leaderboard(limit=10)
        assert [(e.user_id, e.score) for e in top.entries] == [
            ("cy", 20), ("bo", 10), ("di", 10)]
        assert top.entries[2].display_name == "Di" and top.total_users == 3


async def test_retry_after_is_waited_out_before_the_retry(
    start_server: ServerFactory,
) -> None:
    server = await start_server(**{"rules.WIN_MATCH.limit": 1, "rules.WIN_MATCH.window": "1s"})
    asked: list[float] = []
    notes: list[RetryNote] = []

    async def sleep(seconds: float) -> None:
        asked.append(seconds)
        await asyncio.sleep(seconds)  # the quota window really has to pass

    amy = server.token("amy")
    async with client_for(server, sleep=sleep, on_retry=notes.append) as client:
        await client.submit_action("WIN_MATCH", token=amy)
        second = await client.submit_action("WIN_MATCH", token=amy)
        assert (second.new_score, second.replayed) == (40, False)
        assert [n.error.code for n in notes] == ["QUOTA_EXCEEDED"]
        assert notes[0].error.retry_after is not None
        assert asked == [notes[0].error.retry_after] and asked[0] >= 1.0
        # a quota window longer than max_retry_after is raised at once, not slept
        await client.submit_action("DAILY_LOGIN_BONUS", token=amy)
        with pytest.raises(ScoreboardError) as raised:
            await client.submit_action("DAILY_LOGIN_BONUS", token=amy)
        assert (raised.value.status, raised.value.code) == (429, "QUOTA_EXCEEDED")
        assert raised.value.retry_after is not None and raised.value.retry_after > 86000
        assert len(asked) == 1


async def test_refusals_are_typed_errors_and_replies_typed_objects(server: Running) -> None:
    async with client_for(server) as client:
        for call, status, code in [
            (client.submit_action("COMPLETE_LEVEL", token="not-a-jwt"), 401, "UNAUTHORIZED"),
            (client.submit_action("NO_SUCH_ACTION", token=server.token("amy")), 400,
             "UNKNOWN_ACTION"),
            (client.user_score("nobody"), 404, "NOT_FOUND"),
            (client.leaderboard(board="no-such-board"), 404, "NOT_FOUND"),
        ]:
            with pytest.raises(ScoreboardError) as raised:
                await call
            e = raised.value
            assert (e.status, e.code) == (status, code) and e.message and e.request_id
        for i, user in enumerate(["ann", "ben", "cat", "dan"]):
            for n in range(i + 1):
                await client.submit_action("COMPLETE_LEVEL", client_action_id=f"{user}{n}",
                                           token=server.token(user, user.title()))
        near = await client.around("ben", radius=1)
        assert [(e.rank, e.user_id, e.score) for e in near.entries] == [
            (2, "cat", 30), (3, "ben", 20), (4, "ann", 10)]
        score = await client.user_score("cat")
        assert (score.display_name, score.score, score.rank, score.in_top) == (
            "Cat", 30, 2, True)


async def test_a_token_provider_is_asked_again_after_a_401_and_sessions_have_owners(
    server: Running,
) -> None:
    asked: list[bool] = []

    async def provider(refresh: bool) -> str:
        asked.append(refresh)
        return server.token("backend", scopes=SERVICE) if refresh else "expired"

    async with ScoreboardClient(server.url, token_provider=provider,
                                session=server.http) as client:
        results = await client.submit_batch([BatchAction("eve", "COMPLETE_LEVEL")])
        assert isinstance(results[0], ActionResult) and asked == [False, True]
    assert not server.http.closed  # a session passed in is the caller's to close
    own = ScoreboardClient(server.url)
    async with own:
        assert (await own.leaderboard()).total_users == 1
    with pytest.raises(RuntimeError, match="closed"):
        await own.leaderboard()


@asynccontextmanager
async def collecting(client: ScoreboardClient, **kw: object
                     ) -> AsyncIterator[tuple[list[int], asyncio.Event]]:
    """Run `client.events(**kw)` in a task, collecting seqs; set the event on each."""
    seen: list[int] = []
    arrived = asyncio.Event()

    async def consume() -> None:
        async with aclosing(client.events(**kw)) as feed:  # type: ignore[arg-type]
            async for event in feed:
                assert event.kind == "action" and event.user_id is not None
                seen.append(event.seq)
                arrived.set()

    task = asyncio.create_task(consume())
    try:
        yield seen, arrived
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def until(seen: list[int], arrived: asyncio.Event, count: int) -> None:
    while len(seen) < count:
        await asyncio.wait_for(arrived.wait(), 30)
        arrived.clear()


def batch(first: int, count: int) -> list[BatchAction]:
    return [BatchAction(f"u{i % 7}", "COMPLETE_LEVEL", client_action_id=f"c{i}")
            for i in range(first, first + count)]


async def test_a_polling_feed_resumes_across_a_restart(start_server: ServerFactory) -> None:
    port = free_port()
    first = await start_server(**{"server.http_port": port})
    notes: list[RetryNote] = []
    async with client_for(first, on_retry=notes.append, backoff_cap=0.2) as client, \
            collecting(client, after=0, mode="poll", limit=7, wait=5) as (seen, arrived):
        await client.submit_batch(batch(0, 20))
        await until(seen, arrived, 20)
        await first.stop()
        second = await start_server(**{"server.http_port": port})
        await client.submit_batch(batch(20, 20))
        await until(seen, arrived, 40)
        assert seen == list(range(1, 41))
        assert notes and all(n.error.status in (0, 503) for n in notes)
        await second.stop()


@pytest.mark.slow
async def test_the_stream_feed_resumes_across_a_killed_and_restarted_server(
    tmp_path: Path, database_url: str,
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    service = jwt.encode({"sub": "backend", "scope": " ".join(SERVICE),
                          "exp": int(time.time()) + 3600}, SECRET, algorithm="HS256")
    notes: list[RetryNote] = []
    async with ScoreboardClient(url, token=service, on_retry=notes.append,
                                backoff_cap=0.3) as client:
        async with server_process(tmp_path, database_url, port) as proc, \
                collecting(client, after=0) as (seen, arrived):
            await client.submit_batch(batch(0, 30))
            await until(seen, arrived, 30)
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
            async with server_process(tmp_path, database_url, port):
                await client.submit_batch(batch(30, 30))
                await until(seen, arrived, 60)
                assert seen == list(range(1, 61))  # no gap, no repeat
        assert notes and notes[0].error.status == 0  # it did lose the stream
