"""Privacy that hides the person (SPEC §6): once a user hides, public views (boards,
around, scores, WebSocket and SSE updates) show a stable pseudonym and "Anonymous",
never the real id or name; the log and the admin history keep the truth. Real sockets,
SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import orjson

from tests.integration.conftest import Running, ServerFactory
from tests.integration.test_anticheat import admin
from tests.integration.test_live_sse import stream
from tests.integration.test_live_ws import viewer

WAIT = 10.0
ALICE = "alice@example.com"  # ids are often e-mail addresses: the reason for all this
PSEUDONYM = re.compile(r"anon-[a-z2-7]{16}")


async def hide(r: Running, user: str, hidden: bool = True) -> dict[str, Any]:
    async with r.http.put(f"{r.url}/api/v1/users/me/privacy", json={"hideName": hidden},
                          headers=r.headers(user)) as resp:
        body: dict[str, Any] = await resp.json()
        assert resp.status == 200, body
        return body


async def raw(r: Running, path: str, headers: dict[str, str] | None = None
              ) -> tuple[int, bytes]:
    async with r.http.get(f"{r.url}{path}", headers=headers) as resp:
        return resp.status, await resp.read()


def hides_alice(body: bytes | str) -> bool:
    """Neither the id nor the name (`act` names users after their id) is in `body`."""
    text = body.decode() if isinstance(body, bytes) else body
    return "alice" not in text.lower()


async def test_a_hidden_user_appears_only_under_a_stable_pseudonym(
    start_server: ServerFactory,
) -> None:
    r = await start_server()
    await r.act(ALICE, "WIN_MATCH")
    await r.act("bob")
    await hide(r, ALICE)

    status, body = await raw(r, "/api/v1/leaderboard")
    assert status == 200 and hides_alice(body)
    first = orjson.loads(body)["entries"][0]
    assert PSEUDONYM.fullmatch(first["userId"]) and first["displayName"] == "Anonymous"
    pseudonym = first["userId"]

    # the real id is a user who is not there, to anyone but the user and administrators
    by_real = f"/api/v1/users/{ALICE}/score"
    for headers in (None, r.headers("bob")):
        status, body = await raw(r, by_real, headers)
        assert status == 404 and orjson.loads(body)["error"]["code"] == "NOT_FOUND"
        status, body = await raw(r, f"/api/v1/leaderboard/around/{ALICE}", headers)
        assert status == 404
    admin_headers = r.headers("ops", scopes=(r.settings.auth.admin_scope,))
    for headers in (r.headers(ALICE), admin_headers):
        status, body = await raw(r, by_real, headers)
        assert status == 200 and orjson.loads(body)["userId"] == ALICE

    # the pseudonym is what everyone else uses, and what the user is shown as
    for path, headers in ((f"/api/v1/users/{pseudonym}/score", None),
                          (f"/api/v1/leaderboard/around/{pseudonym}?radius=1", None),
                          ("/api/v1/users/me/score", r.headers(ALICE)),
                          ("/api/v1/leaderboard/around/me?radius=1", r.headers(ALICE))):
        status, body = await raw(r, path, headers)
        assert status == 200 and hides_alice(body), path
        assert orjson.loads(body)["userId"] == pseudonym, path
    # a pseudonym that names nobody hidden, and a 404 on another board, repeat only it
    status, body = await raw(r, f"/api/v1/users/{pseudonym}/score?board=weekly")
    assert status == 404 and hides_alice(body)
    status, _ = await raw(r, "/api/v1/users/anon-aaaaaaaaaaaaaaaa/score")
    assert status == 404

    _, history = await admin(r, "GET", f"/users/{ALICE}/history")
    assert {rec["userId"] for rec in history["records"]} == {ALICE}  # the truth

    await r.stop()  # stable: the same pseudonym after a restart
    r = await start_server()
    _, board = await r.get("/api/v1/leaderboard")
    assert board["entries"][0]["userId"] == pseudonym
    await hide(r, ALICE, False)
    _, board = await r.get("/api/v1/leaderboard")
    assert board["entries"][0]["userId"] == ALICE
    status, _ = await raw(r, f"/api/v1/users/{pseudonym}/score")
    assert status == 404  # shown again: the pseudonym no longer stands for anyone


async def test_privacy_set_before_the_first_score_is_never_broadcast_with_the_name(
    start_server: ServerFactory,
) -> None:
    r = await start_server()
    await r.act("bob")
    assert (await hide(r, ALICE))["hidden"] is True  # no score yet: recorded, not a 404
    await r.stop()
    r = await start_server()  # and it survives a restart before the first score
    async with viewer(r) as (ws, _), stream(r) as sse:
        await sse.event()  # the snapshot
        await r.act(ALICE, "WIN_MATCH")  # the first score: straight to the top
        message = await asyncio.wait_for(ws.recv(), WAIT)
        event = await sse.block()
        while event.get("event") != "leaderboard":
            event = await sse.block()
    for update in (orjson.loads(message)["data"], orjson.loads(event["data"])):
        assert hides_alice(orjson.dumps(update))
        top = update["top"][0]
        assert PSEUDONYM.fullmatch(top["userId"]) and top["displayName"] == "Anonymous"
    assert hides_alice(message)
    status, body = await raw(r, "/api/v1/leaderboard")
    assert status == 200 and hides_alice(body)
    _, history = await admin(r, "GET", f"/users/{ALICE}/history")
    assert [(rec["kind"], rec["displayName"]) for rec in history["records"]] == [
        ("action", ALICE.title()), ("hide_name", None)]  # newest first; the log keeps it
