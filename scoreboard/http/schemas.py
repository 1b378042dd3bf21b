"""Building blocks of the OpenAPI document: schema helpers, headers, error answers
and the components (request and response bodies).

Limits and patterns come from `scoreboard.edge.contract`, the error codes each
status can carry from the error table in `scoreboard.edge.errors`, so the document
says what the handlers enforce.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scoreboard.core.ranking import MAX_SCORE
from scoreboard.core.records import Kind
from scoreboard.edge.contract import (
    BOARD,
    HISTORY_LIMIT,
    JWS,
    MAX_BOARD,
    MAX_DEPTH,
    MAX_ID,
    MAX_REASON,
    PRINTABLE,
    REQUEST_ID,
    ecma,
)
from scoreboard.edge.errors import JSON, codes_by_status
from scoreboard.settings.model import Settings

Schema = dict[str, Any]


def ref(kind: str, name: str) -> Schema:
    return {"$ref": f"#/components/{kind}/{name}"}


def schema(name: str) -> Schema:
    return ref("schemas", name)


def obj(properties: dict[str, Schema], required: list[str] | None = None, *,
         closed: bool = True, **extra: Any) -> Schema:
    """An object schema; `required` defaults to every property."""
    out: Schema = {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
    }
    if closed:
        out["additionalProperties"] = False
    out.update(extra)
    return out


def printable(max_len: int = MAX_ID, **extra: Any) -> Schema:
    return {"type": "string", "minLength": 1, "maxLength": max_len, "pattern": ecma(PRINTABLE),
            **extra}


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def integer(lo: int | None = None, hi: int | None = None, **extra: Any) -> Schema:
    # JSON Schema counts 5.0 as an integer; the service refuses it as the wrong type.
    out: Schema = {"type": "integer", "description": "an integer literal (5, not 5.0)"}
    if lo is not None:
        out["minimum"] = lo
    if hi is not None:
        out["maximum"] = hi
    out.update(extra)
    return out


# -- responses ---------------------------------------------------------------------------


def sse_event(event: Schema, id_doc: str, data: str) -> Schema:
    """One Server-Sent Event, its fields parsed as EventSource does; `data` names the
    component its JSON payload follows."""
    return obj(
        {
            "event": event,
            "id": {"type": "string", "pattern": "^[0-9]+$", "description": id_doc},
            "retry": integer(0),
            "data": {"type": "string", "contentMediaType": JSON,
                     "contentSchema": schema(data)},
        },
        ["event", "id", "data"],
        description="One Server-Sent Event, its fields parsed as EventSource does.",
    )


def headers(*names: str, required: tuple[str, ...] = ()) -> dict[str, Schema]:
    """Response headers by component name; X-Request-ID is on every answer."""
    out: dict[str, Schema] = {"X-Request-ID": ref("headers", "XRequestID")}
    for name in names:
        header = ref("headers", name.replace("-", ""))
        if name in required:
            # A $ref may not carry siblings that change it, so spell the required form.
            header = {"required": True, "schema": _HEADER_SCHEMAS[name],
                      "description": _HEADER_DOCS[name]}
        out[name] = header
    return out


def json_answer(description: str, body: Schema, answer_headers: dict[str, Schema] | None = None
          ) -> Schema:
    return {
        "description": description,
        "headers": answer_headers if answer_headers is not None else headers(),
        "content": {JSON: {"schema": body}},
    }


_ERROR_HEADERS: dict[int, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # status: (headers, of which required)
    401: (("WWW-Authenticate",), ("WWW-Authenticate",)),
    429: (("Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"),
          ("Retry-After",)),
    503: (("Retry-After",), ("Retry-After",)),
}

_ERROR_TEXT = {
    400: "The request is malformed or breaks a validation rule",
    401: "No bearer token, or the token was refused",
    403: "The token lacks a scope, or the action is refused",
    404: "Not found",
    409: "The action proof was already spent",
    405: "The path exists but not for this method (see Allow)",
    408: "The request was not received in time",
    413: "The body is larger than the configured limit",
    415: "The body is not application/json (UTF-8)",
    422: "The clientActionId was used before with a different payload",
    431: "The request headers are too large",
    429: "Too many requests (per user or client IP), or the action's quota is used up",
    503: "Overloaded, shutting down, or the action log is unavailable; retry later",
}


def error(status: int, *codes: str) -> Schema:
    """An error answer whose `code` is one of `codes` (the ones this status can carry)."""
    known = codes_by_status()[status]
    unknown = [code for code in codes if code not in known]
    assert not unknown, f"{unknown} are not codes of {status} in the error table"
    names, required = _ERROR_HEADERS.get(status, ((), ()))
    body: Schema = {
        "allOf": [
            schema("Error"),
            {"properties": {"error": {"properties": {"code": {"enum": list(codes)}}}}},
        ]
    }
    return json_answer(_ERROR_TEXT[status], body, headers(*names, required=required))


def errors(spec: Mapping[int, tuple[str, ...]]) -> dict[str, Schema]:
    return {str(status): error(status, *codes) for status, codes in sorted(spec.items())}


Codes = tuple[str, ...]
BAD: Codes = ("INVALID_REQUEST",)
UNAUTH: Codes = ("UNAUTHORIZED",)
FORBID: Codes = ("FORBIDDEN",)
MISSING: Codes = ("NOT_FOUND",)
TOO_LARGE: Codes = ("PAYLOAD_TOO_LARGE",)
TIMEOUT: Codes = ("REQUEST_TIMEOUT",)  # a body that did not arrive in time
MEDIA: Codes = ("UNSUPPORTED_MEDIA_TYPE",)
LIMITED: Codes = ("RATE_LIMITED",)
BUSY: Codes = ("OVERLOADED", "STORE_UNAVAILABLE")

_HEADER_SCHEMAS: dict[str, Schema] = {
    "X-Request-ID": {"type": "string", "pattern": ecma(REQUEST_ID)},
    "Retry-After": integer(0),
    "RateLimit-Limit": integer(0),
    "RateLimit-Remaining": integer(0),
    "RateLimit-Reset": integer(0),
    "ETag": {"type": "string", "minLength": 2},
    "WWW-Authenticate": {"type": "string", "pattern": "^Bearer"},
    "Cache-Control": {"type": "string"},
}
_HEADER_DOCS = {
    "X-Request-ID": "The request id: the client's X-Request-ID when it was well formed, "
                    "else a generated one. It is in the logs too.",
    "Retry-After": "Seconds to wait before trying again.",
    "RateLimit-Limit": "Requests allowed per window.",
    "RateLimit-Remaining": "Requests left in the current window.",
    "RateLimit-Reset": "Seconds until the window resets.",
    "ETag": "Changes whenever the board's version changes; send it back in If-None-Match.",
    "WWW-Authenticate": "Always `Bearer`.",
    "Cache-Control": "`no-cache`: revalidate with the ETag.",
}


# -- parameters --------------------------------------------------------------------------


def board_schema(settings: Settings) -> Schema:
    return {"type": "string", "enum": list(settings.leaderboard.boards),
            "default": "global", "pattern": ecma(BOARD), "maxLength": MAX_BOARD}


def query(name: str, schema: Schema, description: str) -> Schema:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}


def user_path(me: bool) -> Schema:
    text = "A user id (the `sub` of their tokens), 1-128 characters without control characters."
    if me:
        text += " `me` means the caller, and then a bearer token is required."
    return {"name": "userId", "in": "path", "required": True, "schema": printable(),
            "description": text, "examples": {"user": {"value": "alice"}}}


def components(settings: Settings, actions: list[str]) -> dict[str, Any]:
    score = integer(-MAX_SCORE, MAX_SCORE)
    count = integer(0)
    seq = integer(1)
    at = {"type": "string", "format": "date-time"}
    rank = integer(1)
    optional_board = nullable(board_schema(settings))  # null: the same as absent
    board_out = {"type": "string", "pattern": ecma(BOARD)}
    user_id = {"type": "string", "minLength": 1, "maxLength": MAX_ID}
    entry = obj({"rank": rank, "userId": user_id, "displayName": {"type": "string"},
                  "score": score})
    client_action_id = printable(description="Chosen by the client; the idempotency key.")
    reason = printable(MAX_REASON, description="Why; kept in the log.")
    header_components: dict[str, Schema] = {
        name.replace("-", ""): {"description": _HEADER_DOCS[name], "schema": header}
        for name, header in _HEADER_SCHEMAS.items()
    }
    header_components["XRequestID"]["required"] = True  # the envelope sets it on every answer
    return {
        "securitySchemes": {"bearerAuth": {
            "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
            "description": (
                "A JWT whose `sub` is the user id and optional `name` the display name. "
                f"Scopes (`scope` or `scopes` claim): `{settings.auth.admin_scope}` for "
                f"admin routes, `{settings.auth.service_scope}` for minting proofs, batches "
                "and the event feed."
            ),
        }},
        "parameters": {"XRequestId": {
            "name": "X-Request-ID", "in": "header", "required": False,
            "schema": {"type": "string"},
            "description": "Echoed back and logged when it matches "
                           f"`{ecma(REQUEST_ID)}`; otherwise the service makes one up.",
        }},
        "headers": header_components,
        "schemas": {
            "ErrorCode": {"type": "string", "enum": sorted(
                {code for codes in codes_by_status().values() for code in codes})},
            "Error": obj({"error": obj({
                "code": schema("ErrorCode"),
                "message": {"type": "string"},
                "requestId": {"type": "string", "pattern": ecma(REQUEST_ID)},
            })}),
            "ActionRequest": obj(
                {
                    "actionType": {"type": "string", "enum": actions,
                                   "description": "A rule from the server's config."},
                    "clientActionId": client_action_id,
                    "board": optional_board,
                    "proof": nullable({
                        "type": "string", "minLength": 1,
                        "maxLength": settings.auth.max_token_bytes, "pattern": ecma(JWS),
                        "description": "A compact JWS from POST /api/v1/proofs; "
                                       "required by rules with proof = required.",
                    }),
                    "metadata": nullable({
                        "type": "object",
                        "description": (
                            f"Kept for audit: at most {settings.limits.max_metadata_bytes} "
                            f"bytes as JSON, nested at most {MAX_DEPTH} levels, no NUL."
                        ),
                    }),
                },
                ["actionType", "clientActionId"],
                description="Optional fields may also be null, which is the same as absent.",
            ),
            "ActionResult": obj({
                "userId": user_id, "board": board_out,
                "actionType": nullable({"type": "string"}),
                "delta": score, "newScore": score,
                "rank": nullable(rank),
                "replayed": {"type": "boolean"}, "seq": seq, "at": at,
            }),
            "Entry": entry,
            "Leaderboard": obj({
                "board": board_out, "entries": {"type": "array", "items": schema("Entry")},
                "totalUsers": count, "version": count, "generatedAt": at,
            }),
            "Around": obj({
                "board": board_out, "userId": user_id,
                "entries": {"type": "array", "minItems": 1, "items": schema("Entry")},
                "totalUsers": count, "version": count,
            }),
            "UserScore": obj({
                "userId": user_id, "board": board_out, "displayName": {"type": "string"},
                "score": score, "rank": rank, "inTop": {"type": "boolean"},
                "pointsToTop": integer(0), "totalUsers": integer(1),
            }),
            "LiveUpdate": obj({
                "board": board_out, "version": count,
                "top": {"type": "array", "items": schema("Entry")}, "timestamp": at,
            }),
            "LiveEvent": sse_event({"const": "leaderboard"},
                                   "The board version, for Last-Event-ID.", "LiveUpdate"),
            "LiveConfig": obj(
                {
                    "wsUrl": {"type": "string"}, "wsPort": integer(0, 65535),
                    "wsPath": {"type": "string"}, "ssePath": {"type": "string"},
                    "pollPath": {"type": "string"}, "mePath": {"type": "string"},
                    "board": {"type": "string"}, "limit": integer(1),
                    "public": {"type": "boolean"},
                },
                closed=False,
            ),
            "ProofRequest": obj(
                {
                    "userId": printable(description="Who may use the proof."),
                    "actionType": {"type": "string", "enum": actions},
                    "ttlSeconds": integer(1, settings.proofs.max_ttl_seconds,
                                       default=settings.proofs.ttl_seconds),
                    "board": optional_board,
                },
                ["userId", "actionType"],
            ),
            "Proof": obj({
                "proof": {"type": "string", "pattern": ecma(JWS)}, "userId": user_id,
                "actionType": {"type": "string", "enum": actions}, "expiresAt": at,
                "board": board_out,
            }, ["proof", "userId", "actionType", "expiresAt"]),
            "PrivacyRequest": obj({"hideName": {"type": "boolean"}}),
            "ReasonRequest": obj({"reason": reason}),
            "AdjustRequest": obj(
                {
                    "delta": integer(-MAX_SCORE, MAX_SCORE, **{"not": {"const": 0}}),
                    "reason": reason,
                    "clientActionId": client_action_id,
                    "board": optional_board,
                    "create": {"type": "boolean", "default": False,
                               "description": "Add a user the service has never seen "
                                              "(otherwise 404)."},
                },
                ["delta", "reason", "clientActionId"],
            ),
            "UserChange": obj({
                "userId": user_id, "frozen": {"type": "boolean"},
                "hidden": {"type": "boolean"}, "flag": nullable({"type": "string"}),
                "seq": seq, "at": at,
            }),
            "TokensRevoked": obj({
                "userId": user_id, "tokensRevokedAt": at, "seq": seq, "at": at,
            }),
            "LogRecord": obj({
                "seq": seq, "at": at, "board": board_out, "userId": user_id,
                "kind": {"type": "string", "enum": [k.value for k in Kind]},
                "actionType": nullable({"type": "string"}),
                "clientActionId": nullable({"type": "string"}),
                "delta": score, "prevScore": score, "newScore": score,
                "displayName": nullable({"type": "string"}),
                "metadata": nullable({"type": "object"}),
                "actor": nullable({"type": "string"}),
                "reason": nullable({"type": "string"}),
                "proofJti": nullable({"type": "string"}),
            }),
            "History": obj({
                "userId": user_id,
                "records": {"type": "array", "maxItems": HISTORY_LIMIT,
                            "items": schema("LogRecord")},
                "nextCursor": nullable({"type": "string", "pattern": "^[1-9][0-9]*$"}),
            }),
            "Flags": obj({"flags": {"type": "array", "items": obj({
                "userId": user_id, "reason": {"type": "string"},
                "frozen": {"type": "boolean"},
                "displayName": nullable({"type": "string"}),
            })}}),
            "Health": obj({"status": {"const": "ok"}, "version": {"type": "string"}}),
            "Ready": obj({
                "status": {"enum": ["ready", "not ready"]},
                "store": {"enum": ["ok", "unavailable"]},
                "lastSeq": integer(0),
                "tasks": {
                    "type": "object",
                    "additionalProperties": {"enum": ["running", "stopped", "failed"]},
                    "description": "Each long-lived task; any `failed` means not ready.",
                },
                "nats": obj({
                    "connected": {"type": "boolean"}, "publishedSeq": integer(0),
                    "lag": integer(0), "error": nullable({"type": "string"}),
                }, description="With [events.nats]: informative, never makes it 503."),
                "keys": obj({
                    "state": {"enum": ["ok", "stale"]},
                    "keys": integer(0),
                    "ageSeconds": nullable({"type": "number"}),
                    "error": {"type": "string"},
                }, ["state", "keys", "ageSeconds"], description=(
                    "With an identity provider: `stale` while its key set cannot be "
                    "refreshed and the last good keys stay in use (still ready)."
                )),
            }, ["status", "store", "lastSeq", "tasks"]),
        },
    }


