"""OpenAPI components of the trusted-backend routes: batches and the event feed."""

from __future__ import annotations

from scoreboard.core.records import Kind
from scoreboard.edge.contract import BOARD, MAX_ACTION_TYPE, MAX_DEPTH, MAX_NAME, MAX_SEQ, ecma
from scoreboard.http.schemas import (
    Schema,
    integer,
    nullable,
    obj,
    printable,
    schema,
    sse_event,
)
from scoreboard.settings.model import Settings


def event_schemas(settings: Settings) -> dict[str, Schema]:
    limits = settings.limits
    optional_board = nullable({"type": "string", "pattern": ecma(BOARD),
                               "description": "A configured board; `global` by default."})
    return {
        "BatchAction": obj(
            {
                "userId": printable(description="Whose action it is."),
                "actionType": printable(MAX_ACTION_TYPE,
                                        description="A rule from the server's config; "
                                                    "an unknown one is refused per action."),
                "clientActionId": printable(description="The idempotency key, per user."),
                "board": optional_board,
                "displayName": nullable(printable(MAX_NAME)),
                "metadata": nullable({
                    "type": "object",
                    "description": (
                        f"Kept for audit: at most {limits.max_metadata_bytes} bytes as "
                        f"JSON, nested at most {MAX_DEPTH} levels, no NUL."
                    ),
                }),
            },
            ["userId", "actionType", "clientActionId"],
        ),
        "BatchRequest": obj({"actions": {
            "type": "array", "minItems": 1, "maxItems": limits.max_batch_actions,
            "items": schema("BatchAction"),
        }}),
        "BatchItemError": obj({
            "error": obj({"code": schema("ErrorCode"), "message": {"type": "string"}}),
            "status": integer(400, 599),
            "retryAfter": integer(1),
        }, ["error", "status"]),
        "BatchResult": obj({"results": {
            "type": "array",
            "items": {"anyOf": [schema("ActionResult"), schema("BatchItemError")]},
            "description": "One per action, in request order.",
        }}),
        "EventPage": obj({
            "events": {"type": "array", "items": schema("LogRecord")},
            "next": integer(0, MAX_SEQ, description="Send as `after` for the next page."),
        }),
        "FeedEvent": sse_event({"enum": [k.value for k in Kind]},
                               "The record's seq, for Last-Event-ID.", "LogRecord"),
    }

