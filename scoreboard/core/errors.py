"""Rejections the core decides.

Each is a specific class with a stable error code and what a client needs to act on
it (`retry_after` for a quota). How a rejection is spoken on a given transport (an
HTTP status, headers) is decided at the edge, in one table (`scoreboard.edge.errors`).
"""

from __future__ import annotations


class Refused(Exception):
    """The root of every error a client may be told about: a code and a message.

    `retry_after` (seconds) is set when trying again later can succeed.
    """

    code = "INVALID_REQUEST"
    retry_after: float | None = None

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        if retry_after is not None:
            self.retry_after = retry_after


class Rejection(Refused):
    """An action the writer refuses; nothing changes."""


class InvalidCommand(Rejection):
    code = "INVALID_REQUEST"


class UnknownAction(Rejection):
    code = "UNKNOWN_ACTION"


class NotFound(Rejection):
    code = "NOT_FOUND"


class UserFrozen(Rejection):
    code = "USER_FROZEN"


class ProofInvalid(Rejection):
    code = "PROOF_INVALID"


class ProofReused(Rejection):
    code = "PROOF_REUSED"


class IdempotencyConflict(Rejection):
    code = "IDEMPOTENCY_CONFLICT"


class BoardClosed(Rejection):
    """The board counts no actions now: before its `start`, or after its `end`."""

    code = "BOARD_CLOSED"


class BoardConflict(Rejection):
    """A board exists with another order, operator or schedule: it cannot be redefined."""

    code = "BOARD_CONFLICT"


class QuotaExceeded(Rejection):
    code = "QUOTA_EXCEEDED"

    def __init__(self, message: str, retry_after: float, limit: int | None = None) -> None:
        super().__init__(message, retry_after=retry_after)
        self.limit = limit  # actions per window: the edge's RateLimit-Limit
