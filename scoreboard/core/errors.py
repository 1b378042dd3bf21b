"""Rejections the core decides. Each maps to exactly one HTTP status and error code."""

from __future__ import annotations


class Rejection(Exception):
    """An action the writer refuses; nothing changes."""

    status = 400
    code = "INVALID_REQUEST"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidCommand(Rejection):
    status, code = 400, "INVALID_REQUEST"


class UnknownAction(Rejection):
    status, code = 400, "UNKNOWN_ACTION"


class NotFound(Rejection):
    status, code = 404, "NOT_FOUND"


class UserFrozen(Rejection):
    status, code = 403, "USER_FROZEN"


class ProofInvalid(Rejection):
    status, code = 403, "PROOF_INVALID"


class ProofReused(Rejection):
    status, code = 409, "PROOF_REUSED"


class IdempotencyConflict(Rejection):
    status, code = 422, "IDEMPOTENCY_CONFLICT"


class QuotaExceeded(Rejection):
    status, code = 429, "QUOTA_EXCEEDED"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after
