"""Response bodies, each declared once as a msgspec Struct.

The handlers write these shapes (with orjson, from the read models' own dicts, which
keeps the hot path as it is); the OpenAPI components are generated from the
declarations here, and the schemathesis run checks every live answer against them.
Times are ISO 8601 text, so they are declared as `datetime`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from scoreboard.core.ranking import MAX_SCORE
from scoreboard.core.records import Kind
from scoreboard.edge.contract import (
    BOARD,
    HISTORY_LIMIT,
    JWS,
    MAX_ID,
    MAX_SEQ,
    REQUEST_ID,
    anchored,
)
from scoreboard.edge.errors import JSON

Score = Annotated[int, Meta(ge=-MAX_SCORE, le=MAX_SCORE)]
Count = Annotated[int, Meta(ge=0)]
Seq = Annotated[int, Meta(ge=1)]
Rank = Annotated[int, Meta(ge=1)]
UserId = Annotated[str, Meta(min_length=1, max_length=MAX_ID)]
BoardName = Annotated[str, Meta(pattern=anchored(BOARD))]


def component(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


class Reply(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    """A JSON object with exactly the declared fields."""


class ErrorDetail(Reply):
    code: str  # the components narrow it to the codes of the error table
    message: str
    request_id: Annotated[str, Meta(pattern=anchored(REQUEST_ID))]


class Error(Reply):
    """Every refusal, on every transport."""

    error: ErrorDetail


class ActionResult(Reply):
    user_id: UserId
    board: BoardName
    action_type: str | None
    delta: Score
    new_score: Score
    rank: Rank | None
    replayed: bool
    seq: Seq
    at: datetime


class Entry(Reply):
    rank: Rank
    user_id: UserId
    display_name: str
    score: Score


Cursor = Annotated[str, Meta(pattern=anchored("[A-Za-z0-9_\\-]+"), description=(
    "Opaque: send it back as `cursor` for the next page; null on the last page."))]


class Leaderboard(Reply):
    board: BoardName
    entries: list[Entry]
    total_users: Count
    version: Count
    generated_at: datetime
    period: Annotated[str, Meta(description="The period's id; null for a board without "
                                            "periods.")] | None
    next_cursor: Cursor | None


class ClosedPeriod(Reply):
    """A closed period whose standings are archived, with its top 3."""

    id: str
    starts_at: Annotated[datetime, Meta(description="null: since ever")] | None
    ends_at: Annotated[datetime, Meta(description="null: never ends")] | None
    total_users: Count
    closed_seq: Seq
    top: list[Entry]


class Periods(Reply):
    """A board's closed periods, newest first."""

    board: BoardName
    periods: list[ClosedPeriod]
    next: Annotated[str, Meta(description=(
        "Send it as `before` for older periods; null when there are none."))] | None


class LeaderboardUsers(Reply):
    """Those of the asked users who are on the board, in rank order."""

    board: BoardName
    period: str | None
    entries: list[Entry]
    total_users: Count
    version: Count


class PeriodInfo(Reply):
    id: str
    starts_at: Annotated[datetime, Meta(description="null: since ever")] | None
    ends_at: Annotated[datetime, Meta(description="null: never ends")] | None


class Board(Reply):
    id: BoardName
    title: str
    sort: Literal["desc", "asc"]
    operator: Literal["sum", "best", "latest"]
    ranks: Literal["ordinal", "competition"]
    follows: list[BoardName]
    reset: str
    timezone: str
    period: PeriodInfo | None
    closed: bool


class Boards(Reply):
    boards: list[Board]


class BoardChange(Reply):
    """The board after an administrator's change, and the record that made it."""

    board: Board
    seq: Seq
    at: datetime


class StandingRemoved(Reply):
    board: BoardName
    user_id: UserId
    seq: Seq
    at: datetime


class PeriodExclusion(Reply):
    board: BoardName
    period: str
    user_id: UserId
    seq: Seq
    at: datetime


class Around(Reply):
    board: BoardName
    user_id: UserId
    entries: Annotated[list[Entry], Meta(min_length=1)]
    total_users: Count
    version: Count


class UserScore(Reply):
    user_id: UserId
    board: BoardName
    display_name: str
    score: Score
    rank: Rank
    in_top: bool
    points_to_top: Count
    total_users: Annotated[int, Meta(ge=1)]
    top_percent: Annotated[float, Meta(ge=0, le=100, description="100 * rank / totalUsers, "
                                                                "two decimals.")]


class LiveUpdate(Reply):
    board: BoardName
    version: Count
    period: Annotated[str, Meta(description="The board's current period; null for a "
                                            "board without periods.")] | None
    top: list[Entry]
    timestamp: datetime


def event_data(name: str) -> Meta:
    """An event's `data`: JSON text following the component `name`."""
    return Meta(extra_json_schema={"contentMediaType": JSON, "contentSchema": component(name)})


SseId = Annotated[str, Meta(pattern=anchored("[0-9]+"))]


class LiveEvent(Reply):
    """One Server-Sent Event, its fields parsed as EventSource does."""

    event: Literal["leaderboard"]
    id: Annotated[SseId, Meta(description="The board version, for Last-Event-ID.")]
    data: Annotated[str, event_data("LiveUpdate")]
    retry: Count | UnsetType = UNSET


class LiveConfig(msgspec.Struct, rename="camel"):
    """Where the live page connects; more fields may come."""

    ws_url: str
    ws_port: Annotated[int, Meta(ge=0, le=65535)]
    ws_path: str
    sse_path: str
    poll_path: str
    me_path: str
    board: str
    limit: Rank
    public: bool


class Proof(Reply):
    proof: Annotated[str, Meta(pattern=anchored(JWS))]
    user_id: UserId
    action_type: str  # the components narrow it to the configured rules
    expires_at: datetime
    board: BoardName | UnsetType = UNSET  # present when the proof names one board


class UserChange(Reply):
    user_id: UserId
    frozen: bool
    hidden: bool
    flag: str | None
    seq: Seq
    at: datetime


class TokensRevoked(Reply):
    user_id: UserId
    tokens_revoked_at: datetime
    seq: Seq
    at: datetime


class LogRecord(Reply):
    seq: Seq
    at: datetime
    board: BoardName
    user_id: UserId
    kind: Kind
    action_type: str | None
    client_action_id: str | None
    delta: Score
    prev_score: Score
    new_score: Score
    display_name: str | None
    metadata: dict[str, Any] | None
    actor: str | None
    reason: str | None
    proof_jti: str | None


class History(Reply):
    user_id: UserId
    records: Annotated[list[LogRecord], Meta(max_length=HISTORY_LIMIT)]
    next_cursor: Annotated[str, Meta(pattern=anchored("[1-9][0-9]*"))] | None


class FlaggedUser(Reply):
    user_id: UserId
    reason: str
    frozen: bool
    display_name: str | None


class Flags(Reply):
    flags: list[FlaggedUser]


class Health(Reply):
    status: Literal["ok"]
    version: str


class NatsState(Reply):
    """With [events.nats]: informative, never makes the service unready."""

    connected: bool
    published_seq: Count
    lag: Count
    error: str | None


class KeysState(Reply):
    """With an identity provider: `stale` while its key set cannot be refreshed and the
    last good keys stay in use (still ready)."""

    state: Literal["ok", "stale"]
    keys: Count
    age_seconds: float | None
    error: str | UnsetType = UNSET


class Ready(Reply):
    status: Literal["ready", "not ready"]
    store: Literal["ok", "unavailable"]
    last_seq: Count
    tasks: Annotated[dict[str, Literal["running", "stopped", "failed"]], Meta(
        description="Each long-lived task; any `failed` means not ready.")]
    nats: NatsState | UnsetType = UNSET
    keys: KeysState | UnsetType = UNSET


class ItemRefusal(Reply):
    code: str  # the components narrow it to the codes of the error table
    message: str


class BatchItemError(Reply):
    error: ItemRefusal
    status: Annotated[int, Meta(ge=400, le=599)]
    retry_after: Annotated[int, Meta(ge=1)] | UnsetType = UNSET


class BatchResult(Reply):
    results: Annotated[list[Any], Meta(
        description="One per action, in request order.",
        extra_json_schema={"items": {"anyOf": [component("ActionResult"),
                                               component("BatchItemError")]}},
    )]


class EventPage(Reply):
    events: list[LogRecord]
    next: Annotated[int, Meta(ge=0, le=MAX_SEQ, description="Send as `after` for the next page.")]


class FeedEvent(Reply):
    """One Server-Sent Event of the log, its fields parsed as EventSource does."""

    event: Kind
    id: Annotated[SseId, Meta(description="The record's seq, for Last-Event-ID.")]
    data: Annotated[str, event_data("LogRecord")]
    retry: Count | UnsetType = UNSET


REPLIES: tuple[type[msgspec.Struct], ...] = (
    Error, ActionResult, Leaderboard, Around, UserScore, LiveUpdate, LiveEvent, LiveConfig,
    Proof, UserChange, TokensRevoked, History, Flags, Health, Ready, BatchItemError,
    BatchResult, EventPage, FeedEvent, LeaderboardUsers, Boards, BoardChange, StandingRemoved,
    Periods, PeriodExclusion,
)
