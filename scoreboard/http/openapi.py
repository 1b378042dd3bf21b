"""The OpenAPI 3.1 description of the HTTP API, served at `GET /openapi.json`.

Built once from the running settings (action types from the rules, boards, limits,
scopes, whether reads are public), encoded once, served as bytes. Paths, limits and
patterns come from `scoreboard.edge.contract`, the error codes from the error table,
so a request the document calls invalid is refused, and one it calls valid is not
refused as malformed — except where JSON Schema cannot say it: metadata size and
depth, a delta pushing a score out of range. `tests/integration/test_openapi.py` keeps
the document and the router in step and fuzzes every operation against a live server.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from scoreboard import __version__
from scoreboard.edge import contract as c
from scoreboard.edge.envelope import Routes
from scoreboard.edge.errors import JSON
from scoreboard.http.schemas import (
    BAD,
    BUSY,
    FORBID,
    LIMITED,
    MEDIA,
    MISSING,
    TIMEOUT,
    TOO_LARGE,
    UNAUTH,
    Schema,
    board_schema,
    components,
    errors,
    headers,
    integer,
    json_answer,
    query,
    ref,
    schema,
    user_path,
)
from scoreboard.http.schemas_events import event_schemas
from scoreboard.settings.model import Settings

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
    board_q = query("board", board_schema(settings), "The board; `global` by default.")
    limit_q = query("limit", integer(1, lb.max_limit, default=lb.default_limit),
                     "How many entries from the top.")
    radius_q = query("radius", integer(0, lb.max_radius, default=c.DEFAULT_RADIUS),
                      "How many neighbours above and below the user.")
    min_seq_q = query("minSeq", integer(0, c.MAX_SEQ),
                      "Answer from a state that includes this seq (a `seq` from an action's "
                      "reply); a follower waits up to `cluster.max_wait_seconds` for it, "
                      "then 503; the writer answers 404 for a seq beyond its last.")
    request_id = ref("parameters", "XRequestId")
    reader_errors = {400: BAD, 401: UNAUTH, 404: MISSING, 429: LIMITED, 503: ("OVERLOADED",)}
    reader_note = (
        "Public: a token is optional, but a token that is sent must be valid."
        if lb.public else "Needs a bearer token (`leaderboard.public` is off)."
    )

    def body(schema_name: str) -> Schema:
        return {"required": True, "content": {JSON: {"schema": schema(schema_name)}}}

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

    user_path_me = user_path(me=True)
    user_only = user_path(me=False)
    admin_errors = {401: UNAUTH, 403: FORBID}
    body_errors = {400: BAD, 408: TIMEOUT, 413: TOO_LARGE, 415: MEDIA}

    paths: dict[str, Any] = {
        c.ACTIONS_PATH: {"post": op(
            "reportAction", "Report a completed action", "scores",
            {
                "200": json_answer(
                    "Accepted, or a replay of an earlier identical report (`replayed`)",
                    schema("ActionResult"),
                    headers("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"),
                ),
                **errors({
                    **body_errors,
                    400: ("INVALID_REQUEST", "UNKNOWN_ACTION"),
                    401: UNAUTH,
                    403: ("USER_FROZEN", "PROOF_INVALID"),
                    404: MISSING,
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
        c.BATCH_PATH: {"post": op(
            "reportActions", "Report many users' actions at once (trusted backends)",
            "scores",
            {
                "200": json_answer(
                    "Each action's reply or refusal, in request order", schema("BatchResult"),
                    headers("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"),
                ),
                **errors({**body_errors, 401: UNAUTH, 403: FORBID, 429: LIMITED, 503: BUSY}),
            },
            security=service, request="BatchRequest",
            description=(
                f"Needs the `{auth.service_scope}` scope. Each action is decided like a "
                "single report (rules, quotas, frozen users, abuse flags, exactly once per "
                "(userId, clientActionId)), in order, and all are committed in one "
                "transaction. A refused action is answered in its place with its code and "
                "status; a malformed request is refused whole (400), and so is a batch that "
                "could not be committed (503: send it again, committed actions replay). "
                f"At most {settings.limits.max_batch_actions} actions and "
                f"{settings.limits.max_batch_body_bytes} bytes."
            ),
        )},
        c.EVENTS_PATH: {"get": op(
            "getEvents", "Every committed record, in log order", "events",
            {
                "200": {
                    "description": (
                        "JSON: up to `limit` records after `after` (none: after waiting up "
                        "to `wait` s). With `Accept: text/event-stream`: an endless stream, "
                        "`id: <seq>` / `event: <kind>` / `data: <LogRecord JSON>`, from the "
                        "log and then live, with `: heartbeat` comments when idle."
                    ),
                    "headers": headers(),
                    "content": {JSON: {"schema": schema("EventPage")},
                                "text/event-stream": {"schema": schema("FeedEvent")}},
                },
                **errors({400: BAD, 401: UNAUTH, 403: FORBID, 429: LIMITED,
                          503: ("OVERLOADED", "STORE_UNAVAILABLE")}),
            },
            security=service, parameters=[
                query("after", integer(0, c.MAX_SEQ, default=0),
                      "The last seq the consumer has; records after it are sent."),
                query("limit", integer(1, settings.events.page_limit,
                                       default=min(c.EVENTS_DEFAULT,
                                                   settings.events.page_limit)),
                      "Records per JSON page."),
                query("wait", integer(0, int(settings.events.max_wait), default=0),
                      "JSON: seconds to wait for a record when none is new."),
                {"name": "Last-Event-ID", "in": "header", "required": False,
                 "schema": {"type": "string"},
                 "description": "A stream resumes after this seq (instead of `after`)."},
            ],
            description=(
                f"Needs the `{auth.service_scope}` scope. Positions are the consumer's to "
                "keep; nothing is lost or reordered. A slow stream consumer reads from the "
                "log at its own pace; one whose writes stall is cut off."
            ),
        )},
        c.LEADERBOARD_PATH: {"get": op(
            "getLeaderboard", "The top N of a board", "leaderboard",
            {
                "200": json_answer("The top of the board", schema("Leaderboard"),
                             headers("ETag", "Cache-Control", required=("ETag",))),
                "304": {"description": "The board has not changed since that ETag",
                        "headers": headers("ETag", "Cache-Control", required=("ETag",))},
                **errors(reader_errors),
            },
            security=reader, description=reader_note,
            parameters=[board_q, limit_q, min_seq_q, {
                "name": "If-None-Match", "in": "header", "required": False,
                "schema": {"type": "string"},
                "description": "An ETag from an earlier answer: 304 while it is current.",
            }],
        )},
        c.AROUND_PATH: {"get": op(
            "getAround", "A user and their neighbours by rank", "leaderboard",
            {"200": json_answer("The user's neighbourhood", schema("Around")),
             **errors(reader_errors)},
            security=reader, parameters=[user_path_me, board_q, radius_q, min_seq_q],
            description=reader_note + " 404 when the user is not on the board.",
        )},
        c.MY_SCORE_PATH: {"get": op(
            "getMyScore", "The caller's score and rank", "users",
            {"200": json_answer("The caller's standing", schema("UserScore")),
             **errors(reader_errors)},
            security=bearer, parameters=[board_q, min_seq_q],
            description="404 when the caller is not on the board.",
        )},
        c.USER_SCORE_PATH: {"get": op(
            "getUserScore", "A user's score and rank", "users",
            {"200": json_answer("The user's standing", schema("UserScore")),
             **errors(reader_errors)},
            security=reader, parameters=[user_path_me, board_q, min_seq_q],
            description=reader_note + " 404 when the user is not on the board.",
        )},
        c.STREAM_PATH: {"get": op(
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
                    "headers": {"Cache-Control": ref("headers", "CacheControl")},
                    # As OpenAPI 3.2's itemSchema reads a stream (and schemathesis reads
                    # `schema` of a 3.1 event stream): one parsed event per instance.
                    "content": {"text/event-stream": {"schema": schema("LiveEvent")}},
                },
                **errors({400: BAD, 401: UNAUTH, 404: MISSING, 503: ("OVERLOADED",)}),
            },
            security=reader, parameters=[board_q, limit_q, {
                "name": "Last-Event-ID", "in": "header", "required": False,
                "schema": {"type": "string"},
                "description": "The last version seen: no snapshot if it is still current.",
            }],
            description=reader_note + " Counts against the live connection caps (503).",
        )},
        c.LIVE_CONFIG_PATH: {"get": op(
            "getLiveConfig", "Where the live page connects", "live",
            {"200": json_answer("Live connection settings", schema("LiveConfig"))},
        )},
        c.PROOFS_PATH: {"post": op(
            "mintProof", "Mint a one-time action proof", "proofs",
            {
                "200": json_answer("A proof for one action of one user", schema("Proof")),
                **errors({**body_errors, 400: ("INVALID_REQUEST", "UNKNOWN_ACTION"),
                           401: UNAUTH, 403: FORBID, 404: MISSING}),
            },
            security=service, request="ProofRequest",
            description=f"Needs the `{auth.service_scope}` scope.",
        )},
        c.PRIVACY_PATH: {"put": op(
            "setPrivacy", "Show or hide the caller's name on boards", "users",
            {
                "200": json_answer("The caller's flags after the change", schema("UserChange")),
                **errors({**body_errors, 401: UNAUTH, 404: MISSING, 503: BUSY}),
            },
            security=bearer, request="PrivacyRequest",
            description="Hidden names show as `Anonymous`. 404 for a user with no record yet.",
        )},
        c.ADJUST_PATH: {"post": op(
            "adjustScore", "Change a user's score by a delta, with a reason", "admin",
            {
                "200": json_answer("The adjustment as logged", schema("ActionResult")),
                **errors({**body_errors, **admin_errors, 404: MISSING,
                           422: ("IDEMPOTENCY_CONFLICT",), 503: BUSY}),
            },
            security=admin, parameters=[user_only], request="AdjustRequest",
            description="Idempotent per (userId, clientActionId) like score actions. A user "
                        "the service has never seen is 404 unless `create` is true.",
        )},
        **{
            f"{c.ADMIN_USER_PATH}/{verb}": {"post": op(
                f"{verb}User", summary, "admin",
                {
                    "200": json_answer("The user's flags after the change", schema("UserChange")),
                    **errors({**body_errors, **admin_errors, 404: MISSING, 503: BUSY}),
                },
                security=admin, parameters=[user_only], request="ReasonRequest",
            )}
            for verb, summary in (
                ("freeze", "Freeze a user: no scoring, off the boards"),
                ("unfreeze", "Unfreeze a user"),
                ("unflag", "Clear a user's abuse flag"),
            )
        },
        c.REVOKE_PATH: {"post": op(
            "revokeTokens", "Refuse every token of a user issued up to now", "admin",
            {
                "200": json_answer("The revocation as logged", schema("TokensRevoked")),
                **errors({**body_errors, **admin_errors, 503: BUSY}),
            },
            security=admin, parameters=[user_only], request="ReasonRequest",
            description=(
                "Log out everywhere: tokens of the user issued (`iat`) up to this moment, "
                "and tokens without `iat`, are refused from now on, on HTTP, WebSocket and "
                "SSE; open live connections using them are closed. Any user id may be "
                "revoked, whether or not it has a score."
            ),
        )},
        c.HISTORY_PATH: {"get": op(
            "getUserHistory", "A user's records in the action log, newest first", "admin",
            {
                "200": json_answer("One page of records", schema("History")),
                **errors({400: BAD, **admin_errors, 503: ("STORE_UNAVAILABLE",)}),
            },
            security=admin, parameters=[
                user_only,
                query("limit", integer(1, c.HISTORY_LIMIT, default=c.HISTORY_DEFAULT),
                      "Records per page."),
                query("cursor", integer(1, c.MAX_HISTORY_CURSOR),
                       "`nextCursor` of the previous page: records before that seq."),
            ],
        )},
        c.FLAGS_PATH: {"get": op(
            "getFlags", "Users the abuse monitor flagged", "admin",
            {"200": json_answer("Flagged users", schema("Flags")), **errors(admin_errors)},
            security=admin,
        )},
        c.HEALTH_PATH: {"get": op(
            "health", "Liveness", "operations",
            {"200": json_answer("The process is up", schema("Health"))},
        )},
        c.READY_PATH: {"get": op(
            "ready", "Readiness: serving and the action log reachable", "operations",
            {"200": json_answer("Ready", schema("Ready")),
             "503": json_answer(
                 "Not ready: the action log is unreachable, a task failed, or draining",
                 schema("Ready"))},
        )},
        c.METRICS_PATH: {"get": op(
            "metrics", "Prometheus metrics", "operations",
            {"200": {"description": "Prometheus text exposition format",
                     "headers": headers(),
                     "content": {"text/plain": {"schema": {"type": "string"}}}}},
        )},
        c.OPENAPI_PATH: {"get": op(
            "openapi", "This document", "operations",
            {"200": json_answer("The OpenAPI 3.1 description", {
                "type": "object", "required": ["openapi", "info", "paths"],
            })},
        )},
        c.PAGE_PATH: {"get": op(
            "page", "The live leaderboard page", "live",
            {"200": {"description": "A plain HTML page: WebSocket, then SSE, then polling",
                     "headers": headers("Cache-Control"),
                     "content": {"text/html": {"schema": {"type": "string"}}}}},
        )},
        c.STATIC_PATH: {"get": op(
            "pageFile", "A file of the live page (scripts, style, icon)", "live",
            {"200": {"description": "The file, typed by its extension",
                     "headers": headers("Cache-Control"),
                     "content": {"*/*": {"schema": {"type": "string"}}}},
             **errors({404: MISSING})},
            parameters=[{"name": "name", "in": "path", "required": True,
                         "schema": {"type": "string"}, "description": "The file's name."}],
        )},
        c.FAVICON_PATH: {"get": op(
            "favicon", "The page's icon", "live",
            {"200": {"description": "The SVG icon (as `/static/favicon.svg`)",
                     "headers": headers("Cache-Control"),
                     "content": {"image/svg+xml": {"schema": {"type": "string"}}}}},
        )},
    }

    parts = components(settings, actions)
    parts["schemas"].update(event_schemas(settings))
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
                "over WebSocket on its own port "
                f"(`{c.LIVE_PATH}`, see `{c.LIVE_CONFIG_PATH}`), which OpenAPI cannot describe."
            ),
        },
        "servers": [{"url": "/"}],
        "tags": [{"name": name} for name in
                 ("scores", "leaderboard", "users", "live", "events", "proofs", "admin",
                  "operations")],
        "paths": paths,
        "components": parts,
    }


def add_openapi_route(routes: Routes, settings: Settings) -> None:
    """Serve the document at GET /openapi.json, encoded once."""
    body = orjson.dumps(build_openapi(settings))

    async def openapi(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type=JSON,
                            headers={"Cache-Control": "no-cache"})

    routes.add_get(c.OPENAPI_PATH, openapi)
