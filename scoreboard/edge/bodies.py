"""Request bodies, each declared once as a msgspec Struct.

The declaration is the contract: `scoreboard.edge.validation` decodes a body into its
Struct (types, lengths, patterns, bounds, no unknown field) and explains a refusal
from the same declaration; the OpenAPI components are generated from it. What a
Struct cannot say is checked after decoding and noted in its field's description:
bounds from the settings (a proof's length, a proof's lifetime, a batch's size) and
metadata's size, depth and NUL characters.

Optional fields accept null as the same as absent. Messages name the field: `means`
in a field's `extra` is how a refusal describes the characters it takes, `refusal`
the error a malformed value is answered with (400 `INVALID_REQUEST` otherwise).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from scoreboard.core.errors import ProofInvalid
from scoreboard.core.ranking import MAX_SCORE
from scoreboard.core.rules import MAX_VALUE
from scoreboard.edge.contract import (
    BOARD,
    JWS,
    MAX_ACTION_TYPE,
    MAX_DEPTH,
    MAX_ID,
    MAX_NAME,
    MAX_REASON,
    MAX_RESET,
    MAX_TITLE,
    MAX_ZONE,
    PRINTABLE,
    anchored,
)

PRINTABLE_CHARS = {"means": "printable characters"}
INTEGER = "an integer literal (5, not 5.0)"


def printable(max_length: int, description: str | None = None) -> Meta:
    """1 to `max_length` characters without control characters."""
    return Meta(min_length=1, max_length=max_length, pattern=anchored(PRINTABLE),
                description=description, extra=PRINTABLE_CHARS)


ClientActionId = Annotated[str, printable(MAX_ID, "Chosen by the client; the idempotency key.")]
ActionType = Annotated[str, printable(MAX_ACTION_TYPE, "A rule from the server's config.")]
Reason = Annotated[str, printable(MAX_REASON, "Why; kept in the log.")]
Board = Annotated[str, Meta(
    pattern=anchored(BOARD), description="A configured board; `global` by default.",
    extra={"means": "1-64 characters of a-z, 0-9, '_' and '-'"},
)]
Proof = Annotated[str, Meta(
    min_length=1, pattern=anchored(JWS),
    description="A compact JWS from POST /api/v1/proofs; required by rules with "
                "proof = required.",
    extra={"means": "a compact JWS", "refusal": ProofInvalid},
)]
Value = Annotated[int, Meta(
    ge=-MAX_VALUE, le=MAX_VALUE,
    description=f"{INTEGER}: the value a rule with value = \"proof\" scores, within the "
                "rule's min and max (SPEC §11).",
)]
Metadata = Annotated[dict[str, Any], Meta(
    description=f"Kept for audit: a small JSON object, nested at most {MAX_DEPTH} levels, "
                "no NUL.",
)]


class Body(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    """A JSON object with exactly the declared fields."""


class ActionRequest(Body):
    """A completed action of the caller. Optional fields may also be null, which is the
    same as absent."""

    action_type: ActionType
    client_action_id: ClientActionId
    board: Board | None = None
    proof: Proof | None = None
    metadata: Metadata | None = None


class AdjustRequest(Body):
    """An administrator's change of a user's score."""

    delta: Annotated[int, Meta(ge=-MAX_SCORE, le=MAX_SCORE, description=INTEGER,
                               extra_json_schema={"not": {"const": 0}})]
    reason: Reason
    client_action_id: ClientActionId
    board: Board | None = None
    create: Annotated[bool, Meta(
        description="Add a user the service has never seen (otherwise 404).")] = False


class ReasonRequest(Body):
    """Why an administrator changes a user's standing."""

    reason: Reason


class ExclusionRequest(Body):
    """Whom an administrator takes out of a closed period's standings, and why."""

    user_id: Annotated[str, printable(MAX_ID, "A user in the period's standings.")]
    reason: Reason


class ProofRequest(Body):
    """A one-time proof for one action of one user."""

    user_id: Annotated[str, printable(MAX_ID, "Who may use the proof.")]
    action_type: ActionType
    ttl_seconds: Annotated[int, Meta(ge=1, description=INTEGER)] | UnsetType = UNSET
    board: Annotated[str, Meta(
        pattern=anchored(BOARD),
        description="The one board the proof is good for; any board when absent.",
        extra={"means": "1-64 characters of a-z, 0-9, '_' and '-'"},
    )] | None = None
    value: Value | None = None


class PrivacyRequest(Body):
    """The caller's own privacy switch."""

    hide_name: bool


class BatchAction(Body, gc=False):
    """One user's action reported by a trusted backend. (Up to thousands per request,
    holding only decoded JSON, which can form no cycle: not tracked by the collector.)"""

    user_id: Annotated[str, printable(MAX_ID, "Whose action it is.")]
    action_type: Annotated[str, printable(
        MAX_ACTION_TYPE,
        "A rule from the server's config; an unknown one is refused per action.")]
    client_action_id: Annotated[str, printable(MAX_ID, "The idempotency key, per user.")]
    board: Board | None = None
    display_name: Annotated[str, printable(MAX_NAME)] | None = None
    metadata: Metadata | None = None
    value: Value | None = None


class BatchRequest(Body):
    """Many users' actions, decided in order and committed together."""

    actions: Annotated[list[BatchAction], Meta(min_length=1)]


Instant = Annotated[datetime, Meta(
    tz=True, description="An RFC 3339 instant with its offset.")]


class BoardRequest(Body):
    """A board created at run time, from the keys of `[boards.<id>]`. A key left out
    keeps the board's current value when it exists, else its default; of an existing
    board only `title` and a later `end` may change (409 otherwise)."""

    reason: Reason
    title: Annotated[str, printable(MAX_TITLE, "Shown for the board; its id by default.")
                     ] | None = None
    sort: Literal["desc", "asc"] | None = None
    operator: Literal["sum", "best", "latest"] | None = None
    follows: Board | Annotated[list[Board], Meta(max_length=64)] | None = None
    reset: Annotated[str, printable(
        MAX_RESET, "never, daily, weekly, monthly or a 5-field cron expression.")] | None = None
    timezone: Annotated[str, printable(MAX_ZONE, "An IANA time zone name.")] | None = None
    start: Instant | None = None
    end: Instant | None = None
    ranks: Literal["ordinal", "competition"] | None = None


REQUESTS: tuple[type[Body], ...] = (
    ActionRequest, AdjustRequest, ReasonRequest, ProofRequest, PrivacyRequest, BatchRequest,
    BoardRequest, ExclusionRequest,
)
