"""The OpenAPI 3.1 description of the HTTP API, served at `GET /openapi.json`.

Built once from the running settings (action types from the rules, boards, limits,
scopes, whether reads are public), encoded once, served as bytes. Constraints mirror
`scoreboard.validation` (lengths, patterns, ranges), so a request the document calls
invalid is refused, and one it calls valid is not refused as malformed — except where
JSON Schema cannot say it: metadata size and depth, a delta pushing a score out of
range. `tests/integration/test_openapi.py` keeps the document and the router in step
and fuzzes every operation against a live server.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web

from scoreboard import __version__
from scoreboard.admin import HISTORY_LIMIT, MAX_REASON
from scoreboard.api import Routes
from scoreboard.core.ranking import MAX_SCORE
from scoreboard.core.records import Kind
from scoreboard.settings import Settings
from scoreboard.validation import MAX_DEPTH, MAX_ID

OPENAPI_PATH = "/openapi.json"
API = "/api/v1"
STREAM_PATH = f"{API}/leaderboard/stream"
LIVE_CONFIG_PATH = f"{API}/live-config"
JSON = "application/json"

# SPEC §4 error codes, plus aiohttp's own 405 as the middleware names it.
ERROR_CODES = (
    "INVALID_REQUEST", "UNKNOWN_ACTION", "UNAUTHORIZED", "FORBIDDEN", "USER_FROZEN",
    "PROOF_INVALID", "NOT_FOUND", "PROOF_REUSED", "PAYLOAD_TOO_LARGE",
    "UNSUPPORTED_MEDIA_TYPE", "IDEMPOTENCY_CONFLICT", "RATE_LIMITED", "QUOTA_EXCEEDED",
    "OVERLOADED", "STORE_UNAVAILABLE", "METHOD_NOT_ALLOWED",
)

# ECMA-262 spellings of the patterns in scoreboard.validation.
PRINTABLE = r"^[^\u0000-\u001F\u007F]+$"  # no C0 controls, no DEL (length is separate)
BOARD = r"^[a-z0-9][a-z0-9_\-]{0,63}$"
JWS = r"^[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*$"
REQUEST_ID = r"^[A-Za-z0-9._:\-]{1,128}$"
MAX_HISTORY_CURSOR = 2**48  # as AdminApi.history reads `cursor`

Schema = dict[str, Any]


def _ref(kind: str, name: str) -> Schema:
    return {"$ref": f"#/components/{kind}/{name}"}


def _schema(name: str) -> Schema:
    return _ref("schemas", name)


def _obj(properties: dict[str, Schema], required: list[str] | None = None, *,
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


def _printable(max_len: int = MAX_ID, **extra: Any) -> Schema:
    return {"type": "string", "minLength": 1, "maxLength": max_len, "pattern": PRINTABLE,
            **extra}


def _nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def _int(lo: int | None = None, hi: int | None = None, **extra: Any) -> Schema:
    # JSON Schema counts 5.0 as an integer; the service refuses it as the wrong type.
    out: Schema = {"type": "integer", "description": "an integer literal (5, not 5.0)"}
    if lo is not None:
        out["minimum"] = lo
    if hi is not None:
        out["maximum"] = hi
    out.update(extra)
    return out


# -- responses ---------------------------------------------------------------------------


def _headers(*names: str, required: tuple[str, ...] = ()) -> dict[str, Schema]:
    """Response headers by component name; X-Request-ID is on every answer."""
    out: dict[str, Schema] = {"X-Request-ID": _ref("headers", "XRequestID")}
    for name in names:
        header = _ref("headers", name.replace("-", ""))
        if name in required:
            # A $ref may not carry siblings that change it, so spell the required form.
            header = {"required": True, "schema": _HEADER_SCHEMAS[name],
                      "description": _HEADER_DOCS[name]}
        out[name] = header
    return out


def _json(description: str, schema: Schema, headers: dict[str, Schema] | None = None
          ) -> Schema:
    return {
        "description": description,
        "headers": headers if headers is not None else _headers(),
        "content": {JSON: {"schema": schema}},
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
    413: "The body is larger than the configured limit",
    415: "The body is not application/json (UTF-8)",
    422: "The clientActionId was used before with a different payload",
    429: "Too many requests (per user or client IP), or the action's quota is used up",
    503: "Overloaded, shutting down, or the action log is unavailable; retry later",
}


def _error(status: int, *codes: str) -> Schema:
    """An error answer whose `code` is one of `codes` (the ones this status can carry)."""
    names, required = _ERROR_HEADERS.get(status, ((), ()))
    schema: Schema = {
        "allOf": [
            _schema("Error"),
            {"properties": {"error": {"properties": {"code": {"enum": list(codes)}}}}},
        ]
    }
    return _json(_ERROR_TEXT[status], schema, _headers(*names, required=required))


def _errors(spec: Mapping[int, tuple[str, ...]]) -> dict[str, Schema]:
    return {str(status): _error(status, *codes) for status, codes in sorted(spec.items())}


Codes = tuple[str, ...]
BAD: Codes = ("INVALID_REQUEST",)
UNAUTH: Codes = ("UNAUTHORIZED",)
FORBID: Codes = ("FORBIDDEN",)
MISSING: Codes = ("NOT_FOUND",)
TOO_LARGE: Codes = ("PAYLOAD_TOO_LARGE",)
MEDIA: Codes = ("UNSUPPORTED_MEDIA_TYPE",)
LIMITED: Codes = ("RATE_LIMITED",)
BUSY: Codes = ("OVERLOADED", "STORE_UNAVAILABLE")

_HEADER_SCHEMAS: dict[str, Schema] = {
    "X-Request-ID": {"type": "string", "pattern": REQUEST_ID},
    "Retry-After": _int(0),
    "RateLimit-Limit": _int(0),
    "RateLimit-Remaining": _int(0),
    "RateLimit-Reset": _int(0),
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


def _board_schema(settings: Settings) -> Schema:
    return {"type": "string", "enum": list(settings.leaderboard.boards),
            "default": "global", "pattern": BOARD, "maxLength": 64}


def _query(name: str, schema: Schema, description: str) -> Schema:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}


def _user_path(me: bool) -> Schema:
    text = "A user id (the `sub` of their tokens), 1-128 characters without control characters."
    if me:
        text += " `me` means the caller, and then a bearer token is required."
    return {"name": "userId", "in": "path", "required": True, "schema": _printable(),
            "description": text, "examples": {"user": {"value": "alice"}}}


# -- the document ------------------------------------------------------------------------


def build_openapi(settings: Settings) -> dict[str, Any]:
    """The OpenAPI 3.1 document for a service running with `settings`."""
    lb = settings.leaderboard
    auth = settings.auth
    bearer: list[dict[str, list[str]]] = [{"bearerAuth": []}]
    reader = [{}, {"bearerAuth": []}] if lb.public else bearer
    admin = [{"bearerAuth": [auth.admin_scope]}]
    service = [{"bearerAuth": [auth.service_scope]}]
    actions = sorted(settings.rules)
    proof_rules = sorted(name for name, rule in settings.rules.items() if rule.proof_required)
    quota_rules = {
        name: f"{rule.quota.limit} per {rule.quota.window:g} s"
        for name, rule in sorted(settings.rules.items()) if rule.quota is not None
    }
    board_q = _query("board", _board_schema(settings), "The board; `global` by default.")
    limit_q = _query("limit", _int(1, lb.max_limit, default=lb.default_limit),
                     "How many entries from the top.")
    radius_q = _query("radius", _int(0, lb.max_radius, default=5),
                      "How many neighbours above and below the user.")
    request_id = _ref("parameters", "XRequestId")
    reader_errors = {400: BAD, 401: UNAUTH, 404: MISSING, 429: LIMITED}
    reader_note = (
        "Public: a token is optional, but a token that is sent must be valid."
        if lb.public else "Needs a bearer token (`leaderboard.public` is off)."
    )

    def body(schema_name: str) -> Schema:
        return {"required": True, "content": {JSON: {"schema": _schema(schema_name)}}}

    def op(op_id: str, summary: str, tag: str, responses: dict[str, Schema], *,
           security: list[dict[str, list[str]]] | None = None,
           parameters: list[Schema] | None = None, request: str | None = None,
           description: str | None = None) -> Schema:
        out: Schema = {"operationId": op_id, "summary": summary, "tags": [tag]}
        if description:
            out["description"] = description
        out["security"] = security if security is not None else []
        out["parameters"] = [*(parameters or []), request_id]
        if request is not None:
            out["requestBody"] = body(request)
        out["responses"] = responses
        return out

    user_path_me = _user_path(me=True)
    user_path = _user_path(me=False)
    admin_errors = {401: UNAUTH, 403: FORBID}
    body_errors = {400: BAD, 413: TOO_LARGE, 415: MEDIA}

    paths: dict[str, Any] = {
        f"{API}/scores/actions": {"post": op(
            "reportAction", "Report a completed action", "scores",
            {
                "200": _json(
                    "Accepted, or a replay of an earlier identical report (`replayed`)",
                    _schema("ActionResult"),
                    _headers("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"),
                ),
                **_errors({
                    **body_errors,
                    400: ("INVALID_REQUEST", "UNKNOWN_ACTION"),
                    401: UNAUTH,
                    403: ("USER_FROZEN", "PROOF_INVALID"),
                    409: ("PROOF_REUSED",),
                    422: ("IDEMPOTENCY_CONFLICT",),
                    429: ("RATE_LIMITED", "QUOTA_EXCEEDED"),
                    503: BUSY,
                }),
            },
            security=bearer, request="ActionRequest",
            description=(
                "Points come from the server's rules, the user from the token. The answer "
                "is sent once the change is durable. Exactly once per "
                "(user, clientActionId): a repeat with the same payload answers the original "
                "result with `replayed: true`; a different payload is 422."
                + (f" Quotas: {', '.join(f'{k} {v}' for k, v in quota_rules.items())}."
                   if quota_rules else "")
                + (f" Need an action proof: {', '.join(proof_rules)}." if proof_rules else "")
            ),
        )},
        f"{API}/leaderboard": {"get": op(
            "getLeaderboard", "The top N of a board", "leaderboard",
            {
                "200": _json("The top of the board", _schema("Leaderboard"),
                             _headers("ETag", "Cache-Control", required=("ETag",))),
                "304": {"description": "The board has not changed since that ETag",
                        "headers": _headers("ETag", "Cache-Control", required=("ETag",))},
                **_errors(reader_errors),
            },
            security=reader, description=reader_note,
            parameters=[board_q, limit_q, {
                "name": "If-None-Match", "in": "header", "required": False,
                "schema": {"type": "string"},
                "description": "An ETag from an earlier answer: 304 while it is current.",
            }],
        )},
        f"{API}/leaderboard/around/{{userId}}": {"get": op(
            "getAround", "A user and their neighbours by rank", "leaderboard",
            {"200": _json("The user's neighbourhood", _schema("Around")),
             **_errors(reader_errors)},
            security=reader, parameters=[user_path_me, board_q, radius_q],
            description=reader_note + " 404 when the user is not on the board.",
        )},
        f"{API}/users/me/score": {"get": op(
            "getMyScore", "The caller's score and rank", "users",
            {"200": _json("The caller's standing", _schema("UserScore")),
             **_errors(reader_errors)},
            security=bearer, parameters=[board_q],
            description="404 when the caller is not on the board.",
        )},
        f"{API}/users/{{userId}}/score": {"get": op(
            "getUserScore", "A user's score and rank", "users",
            {"200": _json("The user's standing", _schema("UserScore")),
             **_errors(reader_errors)},
            security=reader, parameters=[user_path_me, board_q],
            description=reader_note + " 404 when the user is not on the board.",
        )},
        STREAM_PATH: {"get": op(
            "streamLeaderboard", "Live top N as Server-Sent Events", "live",
            {
                "200": {
                    "description": (
                        "An endless `text/event-stream`: a `retry:` line, then `event: "
                        "leaderboard` / `id: <version>` / `data: <LiveUpdate JSON>` — a "
                        "snapshot first (unless Last-Event-ID is current), then one per "
                        "change of the top N, with `: heartbeat` comments when idle. Slow "
                        "clients skip to the newest snapshot or are cut off."
                    ),
                    "headers": {"Cache-Control": _ref("headers", "CacheControl")},
                    # As OpenAPI 3.2's itemSchema reads a stream (and schemathesis reads
                    # `schema` of a 3.1 event stream): one parsed event per instance.
                    "content": {"text/event-stream": {"schema": _schema("LiveEvent")}},
                },
                **_errors({400: BAD, 401: UNAUTH, 404: MISSING, 503: ("OVERLOADED",)}),
            },
            security=reader, parameters=[board_q, limit_q, {
                "name": "Last-Event-ID", "in": "header", "required": False,
                "schema": {"type": "string"},
                "description": "The last version seen: no snapshot if it is still current.",
            }],
            description=reader_note + " Counts against the live connection caps (503).",
        )},
        LIVE_CONFIG_PATH: {"get": op(
            "getLiveConfig", "Where the live page connects", "live",
            {"200": _json("Live connection settings", _schema("LiveConfig"))},
        )},
        f"{API}/proofs": {"post": op(
            "mintProof", "Mint a one-time action proof", "proofs",
            {
                "200": _json("A proof for one action of one user", _schema("Proof")),
                **_errors({**body_errors, 400: ("INVALID_REQUEST", "UNKNOWN_ACTION"),
                           401: UNAUTH, 403: FORBID}),
            },
            security=service, request="ProofRequest",
            description=f"Needs the `{auth.service_scope}` scope.",
        )},
        f"{API}/users/me/privacy": {"put": op(
            "setPrivacy", "Show or hide the caller's name on boards", "users",
            {
                "200": _json("The caller's flags after the change", _schema("UserChange")),
                **_errors({**body_errors, 401: UNAUTH, 404: MISSING, 503: BUSY}),
            },
            security=bearer, request="PrivacyRequest",
            description="Hidden names show as `Anonymous`. 404 for a user with no record yet.",
        )},
        f"{API}/admin/users/{{userId}}/adjustments": {"post": op(
            "adjustScore", "Change a user's score by a delta, with a reason", "admin",
            {
                "200": _json("The adjustment as logged", _schema("ActionResult")),
                **_errors({**body_errors, **admin_errors, 422: ("IDEMPOTENCY_CONFLICT",),
                           503: BUSY}),
            },
            security=admin, parameters=[user_path], request="AdjustRequest",
            description="Idempotent per (userId, clientActionId) like score actions.",
        )},
        **{
            f"{API}/admin/users/{{userId}}/{verb}": {"post": op(
                f"{verb}User", summary, "admin",
                {
                    "200": _json("The user's flags after the change", _schema("UserChange")),
                    **_errors({**body_errors, **admin_errors, 404: MISSING, 503: BUSY}),
                },
                security=admin, parameters=[user_path], request="ReasonRequest",
            )}
            for verb, summary in (
                ("freeze", "Freeze a user: no scoring, off the boards"),
                ("unfreeze", "Unfreeze a user"),
                ("unflag", "Clear a user's abuse flag"),
            )
        },
        f"{API}/admin/users/{{userId}}/history": {"get": op(
            "getUserHistory", "A user's records in the action log, newest first", "admin",
            {
                "200": _json("One page of records", _schema("History")),
                **_errors({400: BAD, **admin_errors, 503: ("STORE_UNAVAILABLE",)}),
            },
            security=admin, parameters=[
                user_path,
                _query("limit", _int(1, HISTORY_LIMIT, default=50), "Records per page."),
                _query("cursor", _int(1, MAX_HISTORY_CURSOR),
                       "`nextCursor` of the previous page: records before that seq."),
            ],
        )},
        f"{API}/admin/flags": {"get": op(
            "getFlags", "Users the abuse monitor flagged", "admin",
            {"200": _json("Flagged users", _schema("Flags")), **_errors(admin_errors)},
            security=admin,
        )},
        "/health": {"get": op(
            "health", "Liveness", "operations",
            {"200": _json("The process is up", _schema("Health"))},
        )},
        "/ready": {"get": op(
            "ready", "Readiness: serving and the action log reachable", "operations",
            {"200": _json("Ready", _schema("Ready")),
             "503": _json("Not ready (the action log is unreachable)", _schema("Ready"))},
        )},
        "/metrics": {"get": op(
            "metrics", "Prometheus metrics", "operations",
            {"200": {"description": "Prometheus text exposition format",
                     "headers": _headers(),
                     "content": {"text/plain": {"schema": {"type": "string"}}}}},
        )},
        OPENAPI_PATH: {"get": op(
            "openapi", "This document", "operations",
            {"200": _json("The OpenAPI 3.1 description", {
                "type": "object", "required": ["openapi", "info", "paths"],
            })},
        )},
        "/": {"get": op(
            "page", "The live leaderboard page", "live",
            {"200": {"description": "A plain HTML page: WebSocket, then SSE, then polling",
                     "headers": _headers("Cache-Control"),
                     "content": {"text/html": {"schema": {"type": "string"}}}}},
        )},
    }

    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "info": {
            "title": "Scoreboard",
            "version": __version__,
            "summary": "A live top-N leaderboard",
            "description": (
                "Score actions are acknowledged only once durable; points come from "
                "server-side rules. Errors always have the shape "
                '`{"error": {"code", "message", "requestId"}}`. Live updates also go out '
                "over WebSocket on its own port (`/api/v1/leaderboard/live`, see "
                f"`{LIVE_CONFIG_PATH}`), which OpenAPI cannot describe."
            ),
        },
        "servers": [{"url": "/"}],
        "tags": [{"name": name} for name in
                 ("scores", "leaderboard", "users", "live", "proofs", "admin", "operations")],
        "paths": paths,
        "components": _components(settings, actions),
    }


def _components(settings: Settings, actions: list[str]) -> dict[str, Any]:
    score = _int(-MAX_SCORE, MAX_SCORE)
    count = _int(0)
    seq = _int(1)
    at = {"type": "string", "format": "date-time"}
    rank = _int(1)
    optional_board = _nullable(_board_schema(settings))  # null: the same as absent
    board_out = {"type": "string", "pattern": BOARD}
    user_id = {"type": "string", "minLength": 1, "maxLength": MAX_ID}
    entry = _obj({"rank": rank, "userId": user_id, "displayName": {"type": "string"},
                  "score": score})
    client_action_id = _printable(description="Chosen by the client; the idempotency key.")
    reason = _printable(MAX_REASON, description="Why; kept in the log.")
    headers: dict[str, Schema] = {
        name.replace("-", ""): {"description": _HEADER_DOCS[name], "schema": schema}
        for name, schema in _HEADER_SCHEMAS.items()
    }
    headers["XRequestID"]["required"] = True  # the middleware sets it on every answer
    return {
        "securitySchemes": {"bearerAuth": {
            "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
            "description": (
                "A JWT whose `sub` is the user id and optional `name` the display name. "
                f"Scopes (`scope` or `scopes` claim): `{settings.auth.admin_scope}` for "
                f"admin routes, `{settings.auth.service_scope}` for minting proofs."
            ),
        }},
        "parameters": {"XRequestId": {
            "name": "X-Request-ID", "in": "header", "required": False,
            "schema": {"type": "string"},
            "description": "Echoed back and logged when it matches "
                           f"`{REQUEST_ID}`; otherwise the service makes one up.",
        }},
        "headers": headers,
        "schemas": {
            "ErrorCode": {"type": "string", "enum": list(ERROR_CODES)},
            "Error": _obj({"error": _obj({
                "code": _schema("ErrorCode"),
                "message": {"type": "string"},
                "requestId": {"type": "string", "pattern": REQUEST_ID},
            })}),
            "ActionRequest": _obj(
                {
                    "actionType": {"type": "string", "enum": actions,
                                   "description": "A rule from the server's config."},
                    "clientActionId": client_action_id,
                    "board": optional_board,
                    "proof": _nullable({
                        "type": "string", "minLength": 1,
                        "maxLength": settings.auth.max_token_bytes, "pattern": JWS,
                        "description": "A compact JWS from POST /api/v1/proofs; "
                                       "required by rules with proof = required.",
                    }),
                    "metadata": _nullable({
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
            "ActionResult": _obj({
                "userId": user_id, "board": board_out,
                "actionType": _nullable({"type": "string"}),
                "delta": score, "newScore": score,
                "rank": _nullable(rank),
                "replayed": {"type": "boolean"}, "seq": seq, "at": at,
            }),
            "Entry": entry,
            "Leaderboard": _obj({
                "board": board_out, "entries": {"type": "array", "items": _schema("Entry")},
                "totalUsers": count, "version": count, "generatedAt": at,
            }),
            "Around": _obj({
                "board": board_out, "userId": user_id,
                "entries": {"type": "array", "minItems": 1, "items": _schema("Entry")},
                "totalUsers": count, "version": count,
            }),
            "UserScore": _obj({
                "userId": user_id, "board": board_out, "displayName": {"type": "string"},
                "score": score, "rank": rank, "inTop": {"type": "boolean"},
                "pointsToTop": _int(0), "totalUsers": _int(1),
            }),
            "LiveUpdate": _obj({
                "board": board_out, "version": count,
                "top": {"type": "array", "items": _schema("Entry")}, "timestamp": at,
            }),
            "LiveEvent": _obj(
                {
                    "event": {"const": "leaderboard"},
                    "id": {"type": "string", "pattern": "^[0-9]+$",
                           "description": "The board version, for Last-Event-ID."},
                    "retry": _int(0),
                    "data": {"type": "string", "contentMediaType": JSON,
                             "contentSchema": _schema("LiveUpdate")},
                },
                ["event", "id", "data"],
                description="One Server-Sent Event, its fields parsed as EventSource does.",
            ),
            "LiveConfig": _obj(
                {
                    "wsUrl": {"type": "string"}, "wsPort": _int(0, 65535),
                    "wsPath": {"type": "string"}, "ssePath": {"type": "string"},
                    "pollPath": {"type": "string"}, "mePath": {"type": "string"},
                    "board": {"type": "string"}, "limit": _int(1),
                    "public": {"type": "boolean"},
                },
                closed=False,
            ),
            "ProofRequest": _obj(
                {
                    "userId": _printable(description="Who may use the proof."),
                    "actionType": {"type": "string", "enum": actions},
                    "ttlSeconds": _int(1, settings.proofs.max_ttl_seconds,
                                       default=settings.proofs.ttl_seconds),
                },
                ["userId", "actionType"],
            ),
            "Proof": _obj({
                "proof": {"type": "string", "pattern": JWS}, "userId": user_id,
                "actionType": {"type": "string", "enum": actions}, "expiresAt": at,
            }),
            "PrivacyRequest": _obj({"hideName": {"type": "boolean"}}),
            "ReasonRequest": _obj({"reason": reason}),
            "AdjustRequest": _obj(
                {
                    "delta": _int(-MAX_SCORE, MAX_SCORE, **{"not": {"const": 0}}),
                    "reason": reason,
                    "clientActionId": client_action_id,
                    "board": optional_board,
                },
                ["delta", "reason", "clientActionId"],
            ),
            "UserChange": _obj({
                "userId": user_id, "frozen": {"type": "boolean"},
                "hidden": {"type": "boolean"}, "flag": _nullable({"type": "string"}),
                "seq": seq, "at": at,
            }),
            "LogRecord": _obj({
                "seq": seq, "at": at, "board": board_out, "userId": user_id,
                "kind": {"type": "string", "enum": [k.value for k in Kind]},
                "actionType": _nullable({"type": "string"}),
                "clientActionId": _nullable({"type": "string"}),
                "delta": score, "prevScore": score, "newScore": score,
                "displayName": _nullable({"type": "string"}),
                "metadata": _nullable({"type": "object"}),
                "actor": _nullable({"type": "string"}),
                "reason": _nullable({"type": "string"}),
                "proofJti": _nullable({"type": "string"}),
            }),
            "History": _obj({
                "userId": user_id,
                "records": {"type": "array", "maxItems": HISTORY_LIMIT,
                            "items": _schema("LogRecord")},
                "nextCursor": _nullable({"type": "string", "pattern": "^[1-9][0-9]*$"}),
            }),
            "Flags": _obj({"flags": {"type": "array", "items": _obj({
                "userId": user_id, "reason": {"type": "string"},
                "frozen": {"type": "boolean"},
                "displayName": _nullable({"type": "string"}),
            })}}),
            "Health": _obj({"status": {"const": "ok"}, "version": {"type": "string"}}),
            "Ready": _obj({
                "status": {"enum": ["ready", "not ready"]},
                "store": {"enum": ["ok", "unavailable"]},
                "lastSeq": _int(0),
            }),
        },
    }


def add_openapi_route(routes: Routes, settings: Settings) -> None:
    """Serve the document at GET /openapi.json, encoded once."""
    body = orjson.dumps(build_openapi(settings))

    async def openapi(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type=JSON,
                            headers={"Cache-Control": "no-cache"})

    routes.add_get(OPENAPI_PATH, openapi)
