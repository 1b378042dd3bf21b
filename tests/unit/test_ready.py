"""Ready-bytes replies (`scoreboard.edge.ready`) answer exactly as aiohttp's own
`web.Response` with the same headers and body, over a real socket: the same status,
headers (the date aside) and body, on keep-alive GETs and POSTs (the ready path), HEAD,
HTTP/1.0, `Connection: close`, a reply closed by the service, 304, and with a hook that
adds headers as the answer goes out (CORS); and the connection stays usable after it.
Both kinds: a fixed answer (`Ready.of`) and a shape given its body per reply
(`Ready.shape`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from aiohttp import web

from scoreboard.edge.ready import Ready, ReadyReply, http_date

BODY = b'{"board":"global","entries":[]}'
HEADERS = {"ETag": '"global-3-10"', "Cache-Control": "no-cache",
           "Content-Type": "application/json"}
Make = Callable[[int, dict[str, str], bytes], web.StreamResponse]


def plain(status: int, headers: dict[str, str], body: bytes) -> web.StreamResponse:
    return web.Response(status=status, headers=headers, body=body or None)


SENT: list[ReadyReply] = []


def ready(status: int, headers: dict[str, str], body: bytes) -> web.StreamResponse:
    reply = ReadyReply(Ready.of(status, headers, body))
    SENT.append(reply)
    return reply


def shaped(status: int, headers: dict[str, str], body: bytes) -> web.StreamResponse:
    if status == 304:  # no body: a fixed answer
        return ready(status, headers, body)
    reply = ReadyReply(Ready.shape(status, headers), body)
    SENT.append(reply)
    return reply


async def serve(make: Make, *, close: bool = False, hook: bool = False
                ) -> AsyncIterator[int]:
    async def handle(request: web.Request) -> web.StreamResponse:
        status = int(request.query.get("status", "200"))
        if request.method == "POST":  # as the score action's handler: body read first
            body = await request.read()
            assert body == POSTED
        response = make(status, HEADERS, b"" if status == 304 else BODY)
        response.headers["X-Request-ID"] = "rid-1"  # as the envelope sets it
        if close:
            response.force_close()  # as the envelope does while draining
        return response

    async def added(request: web.Request, response: web.StreamResponse) -> None:
        response.headers["Vary"] = "Origin"

    app = web.Application()
    app.router.add_get("/top", handle)
    app.router.add_post("/top", handle)
    if hook:
        app.on_response_prepare.append(added)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


async def exchange(port: int, head: bytes, times: int) -> list[bytes]:
    """Send the request `times` times on one connection, one after the other; the
    answers as received (an answer is complete when its declared length is in)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answers = []
    try:
        for _ in range(times):
            writer.write(head)
            top = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            length = 0
            for line in top.split(b"\r\n"):
                if line.lower().startswith(b"content-length:") and b"HEAD " not in head:
                    length = int(line.split(b":")[1])
            answers.append(top + await asyncio.wait_for(reader.readexactly(length), 5))
    finally:
        writer.close()
    return answers


def shape(answer: bytes) -> tuple[bytes, set[bytes], bytes]:
    top, _, body = answer.partition(b"\r\n\r\n")
    status, *lines = top.split(b"\r\n")
    return status, {line for line in lines if not line.startswith(b"Date: ")}, body


POSTED = b'{"actionType":"COMPLETE_LEVEL","clientActionId":"a-1"}'
POST = b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
    len(POSTED), POSTED)

REQUESTS = {
    "keep-alive GET": (b"GET /top HTTP/1.1\r\nHost: x\r\n\r\n", 3),
    "keep-alive POST": (b"POST /top HTTP/1.1\r\nHost: x\r\n" + POST, 3),
    "POST HTTP/1.0": (b"POST /top HTTP/1.0\r\nHost: x\r\n" + POST, 1),
    "POST HTTP/1.0 keep-alive": (b"POST /top HTTP/1.0\r\nConnection: keep-alive\r\n" + POST,
                                 2),
    "POST Connection: close": (b"POST /top HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + POST,
                               1),
    "304": (b"GET /top?status=304 HTTP/1.1\r\nHost: x\r\n\r\n", 2),
    "HEAD": (b"HEAD /top HTTP/1.1\r\nHost: x\r\n\r\n", 2),
    "HTTP/1.0": (b"GET /top HTTP/1.0\r\nHost: x\r\n\r\n", 1),
    "HTTP/1.0 keep-alive": (b"GET /top HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 2),
    "Connection: close": (b"GET /top HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 1),
}


@pytest.mark.parametrize("name", sorted(REQUESTS))
@pytest.mark.parametrize(("close", "hook"), [(False, False), (True, False), (False, True)])
@pytest.mark.parametrize("kind", [ready, shaped], ids=["fixed", "shaped"])
async def test_the_same_answer_as_aiohttp(name: str, close: bool, hook: bool, kind: Make
                                          ) -> None:
    head, times = REQUESTS[name]
    if close:
        times = 1
    answers = {}
    for make in (plain, kind):
        SENT.clear()
        async for port in serve(make, close=close, hook=hook):
            answers[make] = [shape(a) for a in await exchange(port, head, times)]
    assert answers[kind] == answers[plain]
    _, headers, _ = answers[plain][0]
    assert b"X-Request-ID: rid-1" in headers and (b"Vary: Origin" in headers) == hook
    # the plain case went out as ready bytes, every other through aiohttp's path
    direct = name in ("keep-alive GET", "keep-alive POST", "304") and not close and not hook
    assert [r.direct for r in SENT] == [direct] * times
    assert all(r.prepared for r in SENT)
    if direct:  # as aiohttp's access log would see it
        assert [r.body_length for r in SENT] == [len(answers[kind][0][2])] * times


async def test_the_date_is_now() -> None:
    from email.utils import parsedate_to_datetime
    from time import time

    assert abs(parsedate_to_datetime(http_date().decode()).timestamp() - time()) < 2


def test_no_line_break_in_a_header() -> None:
    with pytest.raises(ValueError):
        Ready.of(200, {"ETag": '"a"\r\nSet-Cookie: x=1'}, b"")
    with pytest.raises(ValueError):
        Ready.shape(200, {"ETag": '"a"\r\nSet-Cookie: x=1'})


def test_a_shape_takes_a_body_and_a_fixed_answer_none() -> None:
    with pytest.raises(ValueError):
        Ready.shape(304, HEADERS)  # never a body
    with pytest.raises(ValueError):
        ReadyReply(Ready.shape(200, HEADERS))
    with pytest.raises(ValueError):
        ReadyReply(Ready.of(200, HEADERS, BODY), BODY)


@pytest.mark.parametrize("status", [200, 304])
def test_a_ready_reply_starts_as_aiohttp_would_make_it(status: int) -> None:
    # ReadyReply sets StreamResponse's state itself (a call less per reply): the same
    # attributes, to the same values, as StreamResponse(status=...) would
    made = vars(web.StreamResponse(status=status))
    reply = ReadyReply(Ready.of(status, HEADERS, b"" if status == 304 else BODY))
    own = {k: v for k, v in vars(reply).items() if k not in ("ready", "body_bytes")}
    assert own == made
    assert (reply.status, reply.reason, dict(reply.headers)) == (status, made["_reason"], {})
