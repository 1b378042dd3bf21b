"""Commands the writer decides on, and what it answers.

Commands arrive already authenticated: `user_id` and `actor` come from verified tokens,
never from a request body.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scoreboard.core.boards import BoardDef
from scoreboard.core.frozen import quick_init


@dataclass(frozen=True, slots=True)
class ProofClaims:
    """The verified claims of an action proof; the signature was checked at the edge."""

    sub: str
    act: str
    jti: str
    exp: float
    val: int | None = None  # the value a `value = "proof"` rule scores (best/latest boards)


@dataclass(frozen=True, slots=True)
class Command:
    user_id: str

    @property
    def idempotency_key(self) -> tuple[str, str] | None:
        return None


@quick_init  # one per action
@dataclass(frozen=True, slots=True)
class SubmitAction(Command):
    display_name: str | None
    board: str
    action_type: str
    client_action_id: str
    metadata: dict[str, Any] | None = None
    proof: ProofClaims | None = None
    value: int | None = None  # from a trusted batch item only, never a user's body

    @property
    def idempotency_key(self) -> tuple[str, str] | None:
        return (self.user_id, self.client_action_id)


@dataclass(frozen=True, slots=True)
class AdjustScore(Command):
    """An administrator changes a score by `delta`; idempotent by `client_action_id`.
    A user the service has never seen is refused unless `create` says to add them."""

    actor: str
    board: str
    delta: int
    reason: str
    client_action_id: str
    create: bool = False

    @property
    def idempotency_key(self) -> tuple[str, str] | None:
        return (self.user_id, self.client_action_id)


@dataclass(frozen=True, slots=True)
class SetFrozen(Command):
    actor: str
    frozen: bool
    reason: str


@dataclass(frozen=True, slots=True)
class SetNameHidden(Command):
    hidden: bool


@dataclass(frozen=True, slots=True)
class ClearFlag(Command):
    actor: str
    reason: str


@dataclass(frozen=True, slots=True)
class RevokeTokens(Command):
    """Refuse every token of the user issued up to now ("log out everywhere")."""

    actor: str
    reason: str


@dataclass(frozen=True, slots=True)
class ResetBoard(Command):
    """An administrator closes the board's current period now (`user_id` is empty)."""

    actor: str
    board: str
    reason: str


@dataclass(frozen=True, slots=True)
class DefineBoard(Command):
    """An administrator creates a board at run time, or changes the title or moves the
    end of one that exists (`user_id` is empty). The keys of `[boards.<id>]`, flat so
    that a follower forwards them like any command: `follows` joins board ids with
    commas (an id holds none), times are seconds since the epoch."""

    actor: str
    board: str
    title: str
    sort: str
    operator: str
    follows: str
    reset: str
    timezone: str
    start: float | None
    end: float | None
    ranks: str
    reason: str

    def definition(self) -> BoardDef:
        """The board these keys define; `BoardError` names a bad key."""
        follows = tuple(b for b in self.follows.split(",") if b)
        return BoardDef(self.board, self.title, self.sort, self.operator, follows,
                        self.reset, self.timezone, self.start, self.end, self.ranks)


@dataclass(frozen=True, slots=True)
class RemoveStanding(Command):
    """An administrator takes a user off a board's current period."""

    actor: str
    board: str
    reason: str


@dataclass(frozen=True, slots=True)
class ExcludeFromPeriod(Command):
    """An administrator takes a user out of a closed period's standings. The period's
    archive is in the store, not the engine: the edge found the user in it, with
    `score`, before sending this."""

    actor: str
    board: str
    period: str
    score: int
    reason: str


@quick_init  # one per action
@dataclass(frozen=True, slots=True)
class ActionResult:
    """The reply to an accepted (or replayed) score change."""

    user_id: str
    board: str
    action_type: str | None
    delta: int
    new_score: int
    rank: int | None
    replayed: bool
    seq: int
    at: float


@dataclass(frozen=True, slots=True)
class UserResult:
    """The reply to a freeze, flag or name-visibility change."""

    user_id: str
    frozen: bool
    hidden: bool
    flag: str | None
    seq: int
    at: float
