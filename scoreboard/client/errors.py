"""What the client raises: `ScoreboardError`, read from the service's JSON error body.

Every refusal of the service looks like
`{"error": {"code": "RATE_LIMITED", "message": "…", "requestId": "…"}}` (SPEC §4); the
client raises it as `ScoreboardError(status, code, message, request_id)`, with the
`Retry-After` seconds when the service sent that header. A request that got no answer
at all (refused or reset connection, a response cut off, a timeout) is a
`ScoreboardConnectionError`: status 0, code `NETWORK_ERROR`, the same as the JS SDK.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from typing import Any

import orjson

NETWORK_ERROR = "NETWORK_ERROR"


class ScoreboardError(Exception):
    """A request the service refused (or, as `ScoreboardConnectionError`, never answered)."""

    def __init__(self, status: int, code: str, message: str, request_id: str | None = None,
                 *, retry_after: float | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id
        self.retry_after = retry_after  # seconds, from `Retry-After`

    @classmethod
    def from_response(cls, status: int, body: bytes,
                      headers: Mapping[str, str]) -> ScoreboardError:
        """The error a non-2xx answer stands for; a body that is not the service's
        error object (a proxy's page) still gives the status, as code `HTTP_<status>`."""
        retry_after = parse_retry_after(headers.get("Retry-After"))
        request_id = headers.get("X-Request-ID")
        error: Any = None
        try:
            error = orjson.loads(body).get("error") if body else None
        except (orjson.JSONDecodeError, AttributeError):
            error = None
        if not isinstance(error, dict):
            text = body[:200].decode("utf-8", "replace").strip()
            return cls(status, f"HTTP_{status}", text or f"HTTP {status}", request_id,
                       retry_after=retry_after)
        return cls(status, str(error.get("code", f"HTTP_{status}")),
                   str(error.get("message", "")), error.get("requestId") or request_id,
                   retry_after=retry_after)


class ScoreboardConnectionError(ScoreboardError):
    """No answer: the connection was refused, reset or cut before the whole response
    arrived, or the try timed out. The request may or may not have been handled."""

    def __init__(self, message: str) -> None:
        super().__init__(0, NETWORK_ERROR, message)


def parse_retry_after(raw: str | None, now: float | None = None) -> float | None:
    """`Retry-After` in seconds: delta-seconds or an HTTP date; None if absent or bad."""
    if raw is None:
        return None
    raw = raw.strip()
    if raw.isascii() and raw.isdigit():
        return float(raw)
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
