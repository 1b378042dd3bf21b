"""Errors as HTTP speaks them: the one table from error class to status, and the one
function that writes the JSON error body.

The core, the writer and storage raise errors that carry a stable code and what a
client needs (`retry_after`), never an HTTP status. The edge adds its own refusals
below (a bad token, a wrong method, a rate limit), and `describe` turns any of them
into (status, code, message, headers) for every transport: HTTP handlers, the SSE and
WebSocket handshakes, and the answers made before a handler runs. The OpenAPI
document lists its error codes from `codes_by_status`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping

import orjson
from aiohttp import web

from scoreboard.core.errors import (
    BoardClosed,
    BoardConflict,
    IdempotencyConflict,
    InvalidCommand,
    NotFound,
    ProofInvalid,
    ProofReused,
    QuotaExceeded,
    Refused,
    UnknownAction,
    UserFrozen,
)
from scoreboard.storage.base import StoreError
from scoreboard.writer.actor import WriterError
from scoreboard.writer.errors import StoreDown

log = logging.getLogger("scoreboard.http")

JSON = "application/json"


class EdgeRefusal(Refused):
    """A refusal made at the edge; may add headers of its own (`Allow`, ...)."""

    def __init__(self, message: str, *, retry_after: float | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message, retry_after=retry_after)
        self.headers = dict(headers or {})


class BadRequest(EdgeRefusal):
    code = "INVALID_REQUEST"


class Unauthorized(EdgeRefusal):
    code = "UNAUTHORIZED"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(EdgeRefusal):
    code = "FORBIDDEN"


class OriginForbidden(Forbidden):
    """A browser on an origin the service does not accept (CORS, WebSocket handshake)."""


class UnknownResource(EdgeRefusal):
    code = "NOT_FOUND"


class MethodNotAllowed(EdgeRefusal):
    code = "METHOD_NOT_ALLOWED"

    def __init__(self, message: str, allowed: set[str]) -> None:
        super().__init__(message, headers={"Allow": ",".join(sorted(allowed))})


class RequestTimeout(EdgeRefusal):
    code = "REQUEST_TIMEOUT"


class PayloadTooLarge(EdgeRefusal):
    code = "PAYLOAD_TOO_LARGE"


class UnsupportedMediaType(EdgeRefusal):
    code = "UNSUPPORTED_MEDIA_TYPE"


class RateLimited(EdgeRefusal):
    code = "RATE_LIMITED"


class HeadersTooLarge(EdgeRefusal):
    code = "HEADERS_TOO_LARGE"


class Unavailable(EdgeRefusal):
    """Live connection caps and shutdown; the client may retry after `retry_after`."""

    code = "OVERLOADED"


# The one table. A class not listed takes its nearest listed base's status.
STATUS: dict[type[BaseException], int] = {
    # the core's rejections
    InvalidCommand: 400,
    UnknownAction: 400,
    UserFrozen: 403,
    ProofInvalid: 403,
    NotFound: 404,
    ProofReused: 409,
    BoardClosed: 409,
    BoardConflict: 409,
    IdempotencyConflict: 422,
    QuotaExceeded: 429,
    # the writer: overloaded, shutting down, the log unavailable
    WriterError: 503,
    # storage, for reads that need the database while it is down
    StoreError: 503,
    # the edge's own
    BadRequest: 400,
    Unauthorized: 401,
    Forbidden: 403,
    OriginForbidden: 403,
    UnknownResource: 404,
    MethodNotAllowed: 405,
    RequestTimeout: 408,
    PayloadTooLarge: 413,
    UnsupportedMediaType: 415,
    RateLimited: 429,
    HeadersTooLarge: 431,
    Unavailable: 503,
}
STORE_CODE = "STORE_UNAVAILABLE"
STORE_RETRY_AFTER = 2.0
# What a client is told when the store is down; the driver's words (hosts, errno) are
# logged with the request id instead.
STORE_MESSAGE = "the score store is unavailable; retry later"

# aiohttp's own refusals (a body over `client_max_size`, a static file that is absent).
_AIOHTTP_CODES = {
    400: "INVALID_REQUEST", 401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED", 408: "REQUEST_TIMEOUT", 413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE", 431: "HEADERS_TOO_LARGE",
}


def code_for_status(status: int) -> str:
    """The error code for a bare status (a library's own refusal, by status only)."""
    if status >= 500:
        return "OVERLOADED" if status == 503 else "INTERNAL"
    return _AIOHTTP_CODES.get(status, "INVALID_REQUEST")


def status_of(exc: BaseException) -> int | None:
    for cls in type(exc).__mro__:
        status = STATUS.get(cls)
        if status is not None:
            return status
    return None


def retry_after_header(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))


def describe(exc: BaseException) -> tuple[int, str, str, dict[str, str]]:
    """(status, code, message, headers) for any error a client can be answered with.
    Anything else is a fault of ours: logged by the caller, answered 500 INTERNAL."""
    status = status_of(exc)
    if isinstance(exc, Refused) and status is not None:
        headers = dict(exc.headers) if isinstance(exc, EdgeRefusal) else {}
        if exc.retry_after is not None:
            headers["Retry-After"] = retry_after_header(exc.retry_after)
        if exc.code == STORE_CODE and not (isinstance(exc, StoreDown) and exc.for_clients):
            return status, exc.code, STORE_MESSAGE, headers
        if isinstance(exc, QuotaExceeded) and exc.limit is not None:
            # the quota window as a rate limit: none left until a slot frees
            headers.update({"RateLimit-Limit": str(exc.limit), "RateLimit-Remaining": "0",
                            "RateLimit-Reset": headers["Retry-After"]})
        return status, exc.code, exc.message, headers
    if isinstance(exc, StoreError):
        return (503, STORE_CODE, STORE_MESSAGE,
                {"Retry-After": retry_after_header(STORE_RETRY_AFTER)})
    if isinstance(exc, web.HTTPException) and exc.status >= 400:
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else {}
        return (exc.status, _AIOHTTP_CODES.get(exc.status, "INVALID_REQUEST"), exc.reason,
                headers)
    return 500, "INTERNAL", "internal error", {}


def error_body(code: str, message: str, request_id: str) -> bytes:
    """The one error shape, on every transport: {"error": {code, message, requestId}}."""
    return orjson.dumps({"error": {"code": code, "message": message, "requestId": request_id}})


def error_response(exc: BaseException, request_id: str) -> web.Response:
    status, code, message, headers = describe(exc)
    if status == 500:
        log.error("unhandled error", extra={"request_id": request_id}, exc_info=exc)
    elif code == STORE_CODE:
        log.warning("answered %s: %s", code, exc, extra={"request_id": request_id})
    return web.Response(body=error_body(code, message, request_id), status=status,
                        content_type=JSON, headers=headers)


def _codes(cls: type[BaseException]) -> Iterator[str]:
    code = getattr(cls, "code", None)
    if code is not None:
        yield code
    for sub in cls.__subclasses__():
        if sub not in STATUS:  # listed subclasses are counted under their own status
            yield from _codes(sub)


def codes_by_status() -> dict[int, list[str]]:
    """Every error code each status can carry, for the API description."""
    out: dict[int, set[str]] = {}
    for cls, status in STATUS.items():
        codes = out.setdefault(status, set())
        codes.update(_codes(cls) if issubclass(cls, Refused) else (STORE_CODE,))
    return {status: sorted(codes) for status, codes in sorted(out.items())}
