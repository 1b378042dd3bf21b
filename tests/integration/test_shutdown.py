"""SIGTERM under load (SPEC §7): stop accepting, commit and answer what is in flight,
exit 0 — and after a restart every acknowledged action is there exactly once."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from scoreboard.storage.verify import verify
from tests.integration.conftest import make_settings
from tests.integration.test_outage import ACTIONS, POINTS, ServerProcess, run_py, token

pytestmark = pytest.mark.slow

USERS = [f"player{i}" for i in range(16)]
SIGNAL_AFTER = 300  # acknowledged actions before the SIGTERM
Key = tuple[str, str]


class Tally:
    """What every request of the load came to."""

    def __init__(self) -> None:
        self.acked: dict[Key, int] = {}  # 200: the seq it got
        self.refused: dict[Key, str] = {}  # a clean 503: its error code
        self.dropped: list[Key] = []  # sent, but the connection ended without an answer
        self.unreachable = 0  # could not connect: the listener had closed
        self.bad: list[tuple[Key, int, str]] = []  # any other answer
        self.acked_after_signal = 0
        self.told_to_close = 0  # answers that said Connection: close
        self.signalled = False
        self.enough = asyncio.Event()


async def post(http: aiohttp.ClientSession, base: str, key: Key
               ) -> tuple[int, Any, dict[str, str]]:
    async with http.post(f"{base}{ACTIONS}",
                         json={"actionType": "COMPLETE_LEVEL", "clientActionId": key[1]},
                         headers={"Authorization": f"Bearer {token(key[0])}"}) as r:
        raw = await r.read()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = raw.decode(errors="replace")
        return r.status, body, dict(r.headers)


async def client(http: aiohttp.ClientSession, base: str, user: str, tally: Tally) -> None:
    """Posts back to back until the server cannot be reached any more."""
    n = 0
    while True:
        n += 1
        key = (user, f"{user}-{n}")
        try:
            status, body, headers = await post(http, base, key)
        except aiohttp.ClientConnectorError:
            tally.unreachable += 1
            return
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError,
                aiohttp.ClientPayloadError):
            tally.dropped.append(key)
            continue
        if headers.get("Connection", "").lower() == "close":
            tally.told_to_close += 1
        if status == 200 and isinstance(body, dict) and body.get("replayed") is False:
            tally.acked[key] = body["seq"]
            if tally.signalled:
                tally.acked_after_signal += 1
            elif len(tally.acked) >= SIGNAL_AFTER:
                tally.enough.set()
        elif (status == 503 and isinstance(body, dict)
              and body.get("error", {}).get("code") in ("OVERLOADED", "STORE_UNAVAILABLE")
              and int(headers.get("Retry-After", "0")) >= 1):
            tally.refused[key] = body["error"]["code"]
        else:
            tally.bad.append((key, status, str(body)[:200]))


async def serving(child: ServerProcess) -> None:
    await child.wait_for_line("Scoreboard serving")


async def test_sigterm_under_load_answers_what_it_accepted_and_exits_0(
    tmp_path: Path, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "data"
    tally = Tally()
    async with run_py(data_dir, database_url) as child:
        await serving(child)
        async with aiohttp.ClientSession() as http:
            tasks = [asyncio.create_task(client(http, child.url, u, tally), name=u)
                     for u in USERS]
            try:
                await asyncio.wait_for(tally.enough.wait(), 30)
                child.proc.send_signal(signal.SIGTERM)  # 16 requests are in flight now
                tally.signalled = True
                signalled_at = time.monotonic()
                code = await child.exit_code()
                exited_after = time.monotonic() - signalled_at
            finally:
                done, _ = await asyncio.wait(tasks, timeout=20)
                for t in tasks:
                    t.cancel()
            assert len(done) == len(tasks), "a client was still posting after the exit"
            for t in tasks:
                t.result()

    assert code == 0, child.stderr
    assert exited_after < 15.0, exited_after
    assert '"msg":"stopped"' in child.stderr
    assert not tally.bad, tally.bad[:5]
    assert tally.acked_after_signal >= 1  # what was in flight was answered
    # Answers sent while draining say Connection: close, so a keep-alive client opens a
    # new connection (refused: nothing sent) instead of posting into a closing socket.
    assert tally.told_to_close >= 1
    assert tally.unreachable == len(USERS)  # every client ended at the closed listener

    # A restarted server knows every acknowledged action, once, with its seq.
    async with run_py(data_dir, database_url) as child, aiohttp.ClientSession() as http:
        await serving(child)
        for key, seq in tally.acked.items():
            status, body, _ = await post(http, child.url, key)
            assert status == 200 and body["replayed"] is True and body["seq"] == seq, body
        # A request that got no answer must not have been committed: the server never
        # took it (its connection was closed before the request was read).
        for key in tally.dropped:
            status, body, _ = await post(http, child.url, key)
            assert status == 200 and body["replayed"] is False, (key, body)
        for key in tally.refused:  # a 503 may or may not have landed; never twice
            status, body, _ = await post(http, child.url, key)
            assert status == 200, body
        in_log = {*tally.acked, *tally.dropped, *tally.refused}
        async with http.get(f"{child.url}/ready") as r:
            assert (await r.json())["lastSeq"] == len(in_log)
        for user in USERS:
            mine = sum(1 for u, _ in in_log if u == user)
            async with http.get(f"{child.url}/api/v1/users/{user}/score") as r:
                assert (await r.json())["score"] == POINTS * mine
        assert await child.terminate() == 0, child.stderr

    capsys.readouterr()
    assert await verify(make_settings(data_dir, database_url)) == 0
    assert capsys.readouterr().out.startswith(f"OK: {len(in_log)} records replayed")
