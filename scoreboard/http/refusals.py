"""Refusals made before, or instead of, a handler: in the one error format too.

The HTTP parser refuses heads it cannot take (an oversized or malformed request line,
a header field over the limit, too many headers, `Content-Length` together with
`Transfer-Encoding`); deadlines and connection caps refuse connections that never got
as far as a request. `parser_refusal` names such a failure as the edge's error class
(so the one status table answers it), and `raw_response` writes any refusal as a
complete HTTP/1.1 answer for a bare transport, with the JSON error body and
`Connection: close`.

Messages are our own: the parser's echo the client's bytes back.
"""

from __future__ import annotations

from http import HTTPStatus

from aiohttp import http_exceptions as hx

from scoreboard.core.errors import Refused
from scoreboard.edge.contract import MAX_HEADER_FIELD, MAX_HEADERS, MAX_REQUEST_LINE
from scoreboard.edge.errors import (
    JSON,
    BadRequest,
    EdgeRefusal,
    HeadersTooLarge,
    describe,
    error_body,
)

_FRAMING = ("Content-Length", "Transfer-Encoding", "chunk")


def parser_refusal(exc: BaseException | None) -> EdgeRefusal:
    """The refusal for a request head (or body framing) the parser could not take."""
    if isinstance(exc, hx.LineTooLong):
        limit = exc.args[1] if len(exc.args) > 1 else None
        if limit == MAX_REQUEST_LINE:
            return BadRequest(f"the request line is longer than {MAX_REQUEST_LINE} bytes")
        return HeadersTooLarge(f"a header field is longer than {MAX_HEADER_FIELD} bytes")
    message = exc.message if isinstance(exc, hx.HttpProcessingError) else ""
    if not isinstance(message, str):
        message = ""
    if "Too many headers" in message:
        return HeadersTooLarge(f"more than {MAX_HEADERS} header fields")
    if isinstance(exc, hx.BadStatusLine | hx.InvalidURLError):
        return BadRequest("malformed request line")
    if any(word in message for word in _FRAMING):
        return BadRequest("malformed or conflicting framing (Content-Length, "
                          "Transfer-Encoding)")
    if isinstance(exc, hx.InvalidHeader):
        return BadRequest("malformed header field")
    return BadRequest("malformed HTTP request")


def raw_response(exc: Refused, request_id: str) -> bytes:
    """A whole HTTP/1.1 answer for `exc`, ready for `transport.write`."""
    status, code, message, headers = describe(exc)
    body = error_body(code, message, request_id)
    lines = [
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
        f"Content-Type: {JSON}",
        f"Content-Length: {len(body)}",
        "Connection: close",
        f"X-Request-ID: {request_id}",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
