"""The three private attributes of aiohttp's request handler that the HTTP head deadline
reads (`scoreboard.http.listener`): this fails first when an aiohttp release changes
them, before any edge test times out for a reason that is hard to see."""

from __future__ import annotations

import asyncio
import socket

from aiohttp import web

from scoreboard.http.listener import handling_request, heads_parsed, waiting_for_request

WHAT_TO_DO = (
    "aiohttp's RequestHandler no longer keeps `_request_count`, `_waiter` and `_messages` "
    "as scoreboard/http/listener.py expects: adapt heads_parsed, waiting_for_request and "
    "handling_request to the new version (or use a public hook if it has one), run "
    "tests/integration/test_edge_http.py and test_hostile.py, then widen the aiohttp "
    "range in pyproject.toml"
)


async def until(condition: object, what: str) -> None:
    """Let the handler's loop run until `condition()` holds (a bounded number of turns)."""
    for _ in range(200):
        if condition():  # type: ignore[operator]
            return
        await asyncio.sleep(0)  # one turn of the loop, not a wait for time
    raise AssertionError(f"{what}. {WHAT_TO_DO}")


async def walk_one_request() -> list[str]:
    loop = asyncio.get_running_loop()
    answered, release = asyncio.Event(), asyncio.Event()

    async def handle(request: web.BaseRequest) -> web.Response:
        answered.set()
        await release.wait()  # held in the handler while the test looks
        return web.Response(text="ok")

    server = web.Server(handle)
    handler = web.RequestHandler(server, loop=loop, access_log=None)
    ours, theirs = socket.socketpair()
    theirs.setblocking(False)
    seen = []
    try:
        await loop.connect_accepted_socket(lambda: handler, ours)
        await until(lambda: waiting_for_request(handler), "a new connection is not idle")
        seen.append("idle")
        assert heads_parsed(handler) == 0, WHAT_TO_DO

        handler.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n")  # half a head
        assert heads_parsed(handler) == 0, WHAT_TO_DO
        assert waiting_for_request(handler), WHAT_TO_DO
        assert not handling_request(handler), WHAT_TO_DO
        seen.append("half a head")

        handler.data_received(b"\r\n")  # the head is complete: parsed, queued
        assert heads_parsed(handler) == 1, WHAT_TO_DO
        assert not waiting_for_request(handler), WHAT_TO_DO
        assert handling_request(handler), WHAT_TO_DO
        seen.append("parsed")

        await asyncio.wait_for(answered.wait(), 5.0)
        assert handling_request(handler), WHAT_TO_DO
        assert not waiting_for_request(handler), WHAT_TO_DO
        seen.append("handled")
        release.set()
        await until(lambda: waiting_for_request(handler), "after a response it is not idle")
        assert heads_parsed(handler) == 1, WHAT_TO_DO
        assert (await loop.sock_recv(theirs, 4096)).startswith(b"HTTP/1.1 200"), WHAT_TO_DO
        seen.append("idle again")
    finally:
        handler.force_close()
        theirs.close()
        await server.shutdown(1.0)
    return seen


def test_the_handler_state_the_head_deadline_reads() -> None:
    try:
        seen = asyncio.run(walk_one_request())
    except AttributeError as exc:  # an attribute renamed or gone
        raise AssertionError(f"{exc}. {WHAT_TO_DO}") from exc
    assert seen == [
        "idle", "half a head", "parsed", "handled", "idle again",
    ]
