"""Replies sent as ready bytes: a cached answer's status line, fixed headers and body,
serialized once and written to the socket in one call.

aiohttp builds every answer the same way: a header dict is filled, copied, completed
(length, date, server, connection) and serialized, the body joined to it, for each
request. For the busiest read (the cached top-N) that work is most of what the
service adds to a bare handler, and none of it changes while the board stands. A
`Ready` holds the result once; a `ReadyReply` sends it with what is per request: the
date and the headers set on the reply after it was made (the envelope's `X-Request-ID`).
A reply whose body differs each time (an accepted score action's small JSON) has a
`Ready.shape`: its status line and fixed headers serialized once, its body and that
body's length given with each reply.

Only the plain case is sent this way: a GET or POST over HTTP/1.1 on a connection that
stays open, with no `on_response_prepare` hook (CORS) to add headers. Anything else
(HEAD, HTTP/1.0, `Connection: close`, a reply the service closes after, CORS) takes
aiohttp's own path with the same headers, so both answer alike (tests/unit/test_ready.py).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http import SERVER_SOFTWARE, HttpVersion11
from multidict import CIMultiDict

_date = (0, b"")


def http_date() -> bytes:
    """The `Date` header's value for now, formatted once per second."""
    global _date
    second = int(time.time())
    if _date[0] != second:
        _date = (second, formatdate(second, usegmt=True).encode("ascii"))
    return _date[1]


def _line(name: str, value: str) -> bytes:
    if "\r" in value or "\n" in value:
        raise ValueError(f"header {name}: a line break in its value")
    return f"{name}: {value}\r\n".encode("latin-1")


DIRECT_METHODS = frozenset(("GET", "POST"))  # answered with a body (not HEAD)
EMPTY_STATUSES = (204, 304)  # these never carry a body, nor its length


@dataclass(frozen=True, slots=True)
class Ready:
    """One answer, serialized: `head` is the status line and the fixed headers (with
    `Content-Length` when `sized`: a body of its own, or none); `headers` are the same
    fixed headers, for aiohttp's own path."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    head: bytes
    reason: str  # the status line's phrase
    sized: bool = True  # False: a shape, whose body (and length) each reply brings

    @classmethod
    def of(cls, status: int, headers: Mapping[str, str], body: bytes = b"") -> Ready:
        return cls._made(status, headers, body, sized=True)

    @classmethod
    def shape(cls, status: int, headers: Mapping[str, str]) -> Ready:
        """The status and fixed headers of answers whose body differs from one reply to
        the next (`ReadyReply(shape, body)`)."""
        if status in EMPTY_STATUSES:
            raise ValueError(f"a {status} answer carries no body")
        return cls._made(status, headers, b"", sized=False)

    @classmethod
    def _made(cls, status: int, headers: Mapping[str, str], body: bytes, *, sized: bool
              ) -> Ready:
        fixed = dict(headers)
        reason = HTTPStatus(status).phrase
        lines = [f"HTTP/1.1 {status} {reason}\r\n".encode("latin-1")]
        lines += [_line(name, value) for name, value in fixed.items()]
        if sized and status not in EMPTY_STATUSES:
            lines.append(_line("Content-Length", str(len(body))))
        lines.append(_line("Server", SERVER_SOFTWARE))
        return cls(status, fixed, body, b"".join(lines), reason, sized)


class ReadyReply(web.StreamResponse):
    """A `Ready` answer to one request: its own body, or `body` for a `Ready.shape`.
    Headers set on it before it is sent (the request id) go out after the fixed ones."""

    _sent = False  # class defaults: one store less each per reply
    _empty = True

    def __init__(self, ready: Ready, body: bytes | None = None) -> None:
        # StreamResponse.__init__(status=ready.status), its checks done once in Ready.of:
        # the state it sets, and nothing else (tests/unit/test_ready.py compares them)
        self._state = {}
        self._headers = CIMultiDict()
        self._status = ready.status
        self._reason = ready.reason
        self.ready = ready
        if ready.sized:
            if body is not None:
                raise ValueError("this answer's body is fixed")
            self.body_bytes = ready.body
        elif body is None:
            raise ValueError("this answer's shape needs a body")
        else:
            self.body_bytes = body

    @property
    def direct(self) -> bool:
        """Whether it went out as ready bytes (not through aiohttp's own path)."""
        return self._sent

    @property
    def prepared(self) -> bool:
        return self._sent or super().prepared

    @property
    def body_length(self) -> int:
        return len(self.body_bytes) if self._sent else super().body_length

    @property
    def keep_alive(self) -> bool | None:
        # sent as ready bytes only on a connection that stays open
        return True if self._sent else super().keep_alive

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        if self._sent:
            return None
        ready = self.ready
        if (self._keep_alive is None and request.method in DIRECT_METHODS
                and request.version == HttpVersion11 and request.keep_alive
                and isinstance(request, web.Request) and not request.app.on_response_prepare):
            body = self.body_bytes
            if ready.sized:
                parts = [ready.head, b"Date: ", http_date(), b"\r\n"]
            else:
                parts = [ready.head, b"Content-Length: ", b"%d" % len(body),
                         b"\r\nDate: ", http_date(), b"\r\n"]
            headers = self._headers
            if headers:
                parts += [_line(name, value) for name, value in headers.items()]
            parts += [b"\r\n", body]
            self._sent = True
            await request.writer.write_eof(b"".join(parts))
            return None
        # aiohttp's own path, with the same headers
        extra = CIMultiDict(self.headers)
        headers = self.headers
        headers.clear()
        headers.update(ready.headers)
        headers.extend(extra)
        self._empty = ready.status in EMPTY_STATUSES or request.method == "HEAD"
        if ready.status not in EMPTY_STATUSES:
            headers["Content-Length"] = str(len(self.body_bytes))
        return await super().prepare(request)

    async def write_eof(self, data: bytes = b"") -> None:
        if self._sent:
            return
        await super().write_eof(b"" if self._empty else self.body_bytes)
