"""Request bodies within deadlines: `edge.body_timeout` in all, `edge.body_read_timeout`
between two reads, and never more than the body cap.

A body that arrived with its head (nearly every JSON body) is taken as it is, with no
timer at all; only a body still on its way is read piece by piece under the deadlines.
A client that promises more than it sends, or a chunked body that never ends, gets 408
(or 413 once it passes the cap) instead of holding the connection.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from scoreboard.edge.errors import PayloadTooLarge, RequestTimeout
from scoreboard.settings.edge import EdgeSettings


def body_at_hand(request: web.Request, cap: int) -> bytes | None:
    """The whole body of `request` if all of it is here already (taken without a wait,
    and without a coroutine), None if some is still on its way; or PayloadTooLarge, for
    a body here or a declared length past the cap."""
    content = request.content
    if content.is_eof():
        body = content.read_nowait()
        if len(body) > cap:
            raise PayloadTooLarge(f"the body limit is {cap} bytes")
        return body
    length = request.content_length
    if length is not None and length > cap:
        raise PayloadTooLarge(f"the body limit is {cap} bytes")
    return None


async def read_body(request: web.Request, cap: int, deadlines: EdgeSettings) -> bytes:
    """The whole body of `request`, or PayloadTooLarge (413) / RequestTimeout (408)."""
    body = body_at_hand(request, cap)
    if body is not None:
        return body
    content = request.content
    loop = asyncio.get_running_loop()
    total, between = deadlines.body_timeout, deadlines.body_read_timeout
    deadline = loop.time() + total
    chunks: list[bytes] = []
    size = 0
    while True:
        wait = min(between, deadline - loop.time())
        try:
            if wait <= 0:
                raise TimeoutError
            async with asyncio.timeout(wait):
                chunk = await content.readany()
        except TimeoutError:
            raise RequestTimeout(
                f"the body did not arrive in time ({total:g} s in all, "
                f"{between:g} s between reads)"
            ) from None
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > cap:
            raise PayloadTooLarge(f"the body limit is {cap} bytes")
        chunks.append(chunk)
