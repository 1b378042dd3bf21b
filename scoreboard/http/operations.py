"""The route table: every HTTP operation, as the OpenAPI document describes it.

Each entry names its method and path (from `scoreboard.edge.contract`), who may call
it, its parameters, its request body (a Struct of `scoreboard.edge.bodies`), its
answers (components generated from `scoreboard.edge.replies`) and the error codes of
each refusal status (from the one error table). `scoreboard.http.openapi` turns the
table into the document's paths; a test keeps it in step with the router.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from scoreboard.edge import contract as c
from scoreboard.edge.bodies import (
    ActionRequest,
    AdjustRequest,
    BatchRequest,
    BoardRequest,
    ExclusionRequest,
    PrivacyRequest,
    ProofRequest,
    ReasonRequest,
)
from scoreboard.edge.contract import BOARD, MAX_BOARD, MAX_ID, PERIOD, ecma
from scoreboard.edge.errors import JSON
from scoreboard.http.components import (
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
    errors,
    headers,
    integer,
    json_answer,
    query,
    ref,
    schema,
    user_path,
)
from scoreboard.read.cursor import MAX_CURSOR
from scoreboard.settings.model import Settings

Security = list[dict[str, list[str]]]
ID_CHARS = r"[^,\u0000-\u001F\u007F]"  # a user id in a list: printable, no comma


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    op_id: str
    summary: str
    tag: str
    responses: dict[str, Schema]
    security: Security | None = None  # None: no token needed
    parameters: list[Schema] | None = None
    request: type[msgspec.Struct] | None = None
    description: str | None = None

    def spec(self) -> Schema:
        """The operation object of the OpenAPI document."""
        out: Schema = {"operationId": self.op_id, "summary": self.summary, "tags": [self.tag]}
        if self.description:
            out["description"] = self.description
        out["security"] = self.security if self.security is not None else []
        out["parameters"] = [*(self.parameters or []), ref("parameters", "XRequestId")]
        if self.request is not None:
            out["requestBody"] = {"required": True, "content": {
                JSON: {"schema": schema(self.request.__name__)}}}
        out["responses"] = self.responses
        return out


def period_query() -> Schema:
    return query("period", {"type": "string", "pattern": ecma(PERIOD)},
                 "A closed period's id: its final standings from the archive (404 for a "
                 "period not closed and archived); the current one's id, or none, reads "
                 "the live board.")


def operations(settings: Settings) -> list[Operation]:
    """Every operation of a service running with `settings`."""
    lb = settings.leaderboard
    auth = settings.auth
    bearer: Security = [{"bearerAuth": []}]
    reader = [{}, {"bearerAuth": []}] if lb.public else bearer
    admin = [{"bearerAuth": [auth.admin_scope]}]
    service = [{"bearerAuth": [auth.service_scope]}]
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
    period_q = period_query()
    min_seq_q = query("minSeq", integer(0, c.MAX_SEQ),
                      "Answer from a state that includes this seq (a `seq` from an action's "
                      "reply); a follower waits up to `cluster.max_wait_seconds` for it, "
                      "then 503; the writer answers 404 for a seq beyond its last.")
    reader_errors = {400: BAD, 401: UNAUTH, 404: MISSING, 429: LIMITED, 503: ("OVERLOADED",)}
    reader_note = (
        "Public: a token is optional, but a token that is sent must be valid."
        if lb.public else "Needs a bearer token (`leaderboard.public` is off)."
    )
    user_path_me = user_path(me=True)
    user_only = user_path(me=False)
    admin_errors = {401: UNAUTH, 403: FORBID}
    body_errors = {400: BAD, 408: TIMEOUT, 413: TOO_LARGE, 415: MEDIA}

    return [
        Operation("post", c.ACTIONS_PATH,
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
                    409: ("PROOF_REUSED", "BOARD_CLOSED"),
                    422: ("IDEMPOTENCY_CONFLICT",),
                    429: ("RATE_LIMITED", "QUOTA_EXCEEDED"),
                    503: BUSY,
                }),
            },
            security=bearer, request=ActionRequest,
            description=(
                "Points come from the server's rules, the user from the token. The answer "
                "is sent once the change is durable. Exactly once per "
                "(user, clientActionId): a repeat with the same payload answers the original "
                "result with `replayed: true`; a different payload is 422."
                + (f" Quotas: {', '.join(f'{k} {v}' for k, v in quota_rules.items())}."
                   if quota_rules else "")
                + (f" Need an action proof: {', '.join(proof_rules)}." if proof_rules else "")
            ),
        ),
        Operation(
            "post", c.BATCH_PATH, "reportActions",
            "Report many users' actions at once (trusted backends)",
            "scores",
            {
                "200": json_answer(
                    "Each action's reply or refusal, in request order", schema("BatchResult"),
                    headers("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"),
                ),
                **errors({**body_errors, 401: UNAUTH, 403: FORBID, 429: LIMITED, 503: BUSY}),
            },
            security=service, request=BatchRequest,
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
        ),
        Operation(
            "get", c.EVENTS_PATH, "getEvents", "Every committed record, in log order", "events",
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
        ),
        Operation(
            "get", c.LEADERBOARD_PATH, "getLeaderboard", "The top N of a board", "leaderboard",
            {
                "200": json_answer("The top of the board", schema("Leaderboard"),
                             headers("ETag", "Cache-Control", required=("ETag",))),
                "304": {"description": "The board has not changed since that ETag",
                        "headers": headers("ETag", "Cache-Control", required=("ETag",))},
                **errors(reader_errors),
            },
            security=reader, description=reader_note + (
                " `nextCursor` pages through the whole board (keyset: a user who did not "
                "change is neither repeated nor skipped while others score); pages after "
                "the first carry no ETag."),
            parameters=[board_q, limit_q, period_q, query(
                "cursor", {"type": "string", "minLength": 1, "maxLength": MAX_CURSOR},
                "`nextCursor` of the previous page (of the same board and period), or 400."
            ), min_seq_q, {
                "name": "If-None-Match", "in": "header", "required": False,
                "schema": {"type": "string"},
                "description": "An ETag from an earlier answer: 304 while it is current.",
            }],
        ),
        Operation(
            "get", c.AROUND_PATH, "getAround", "A user and their neighbours by rank", "leaderboard",
            {"200": json_answer("The user's neighbourhood", schema("Around")),
             **errors(reader_errors)},
            security=reader, parameters=[user_path_me, board_q, radius_q, min_seq_q],
            description=reader_note + " 404 when the user is not on the board.",
        ),
        Operation(
            "get", c.MY_SCORE_PATH, "getMyScore", "The caller's score and rank", "users",
            {"200": json_answer("The caller's standing", schema("UserScore")),
             **errors(reader_errors)},
            security=bearer, parameters=[board_q, period_q, min_seq_q],
            description="404 when the caller is not on the board.",
        ),
        Operation(
            "get", c.USER_SCORE_PATH, "getUserScore", "A user's score and rank", "users",
            {"200": json_answer("The user's standing", schema("UserScore")),
             **errors(reader_errors)},
            security=reader, parameters=[user_path_me, board_q, period_q, min_seq_q],
            description=reader_note + " 404 when the user is not on the board.",
        ),
        Operation(
            "get", c.STREAM_PATH, "streamLeaderboard", "Live top N as Server-Sent Events", "live",
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
        ),
        Operation(
            "get", c.LIVE_CONFIG_PATH, "getLiveConfig", "Where the live page connects", "live",
            {"200": json_answer("Live connection settings", schema("LiveConfig"))},
        ),
        Operation(
            "post", c.PROOFS_PATH, "mintProof", "Mint a one-time action proof", "proofs",
            {
                "200": json_answer("A proof for one action of one user", schema("Proof")),
                **errors({**body_errors, 400: ("INVALID_REQUEST", "UNKNOWN_ACTION"),
                           401: UNAUTH, 403: FORBID, 404: MISSING}),
            },
            security=service, request=ProofRequest,
            description=f"Needs the `{auth.service_scope}` scope. With `board`, the proof is "
                        "good only for an action on that board (an unknown board is 404).",
        ),
        Operation(
            "put", c.PRIVACY_PATH, "setPrivacy",
            "Show or hide the caller's name on boards", "users",
            {
                "200": json_answer("The caller's flags after the change", schema("UserChange")),
                **errors({**body_errors, 401: UNAUTH, 404: MISSING, 503: BUSY}),
            },
            security=bearer, request=PrivacyRequest,
            description="Hidden names show as `Anonymous`. 404 for a user with no record yet.",
        ),
        Operation(
            "post", c.ADJUST_PATH, "adjustScore",
            "Change a user's score by a delta, with a reason", "admin",
            {
                "200": json_answer("The adjustment as logged", schema("ActionResult")),
                **errors({**body_errors, **admin_errors, 404: MISSING,
                           422: ("IDEMPOTENCY_CONFLICT",), 503: BUSY}),
            },
            security=admin, parameters=[user_only], request=AdjustRequest,
            description="Idempotent per (userId, clientActionId) like score actions. A user "
                        "the service has never seen is 404 unless `create` is true.",
        ),
        *(
            Operation(
                "post", f"{c.ADMIN_USER_PATH}/{verb}", f"{verb}User", summary, "admin",
                {
                    "200": json_answer("The user's flags after the change", schema("UserChange")),
                    **errors({**body_errors, **admin_errors, 404: MISSING, 503: BUSY}),
                },
                security=admin, parameters=[user_only], request=ReasonRequest,
            )
            for verb, summary in (
                ("freeze", "Freeze a user: no scoring, off the boards"),
                ("unfreeze", "Unfreeze a user"),
                ("unflag", "Clear a user's abuse flag"),
            )
        ),
        Operation(
            "post", c.REVOKE_PATH, "revokeTokens",
            "Refuse every token of a user issued up to now", "admin",
            {
                "200": json_answer("The revocation as logged", schema("TokensRevoked")),
                **errors({**body_errors, **admin_errors, 503: BUSY}),
            },
            security=admin, parameters=[user_only], request=ReasonRequest,
            description=(
                "Log out everywhere: tokens of the user issued (`iat`) up to this moment, "
                "and tokens without `iat`, are refused from now on, on HTTP, WebSocket and "
                "SSE; open live connections using them are closed. Any user id may be "
                "revoked, whether or not it has a score."
            ),
        ),
        Operation(
            "get", c.HISTORY_PATH, "getUserHistory",
            "A user's records in the action log, newest first", "admin",
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
        ),
        Operation(
            "get", c.FLAGS_PATH, "getFlags", "Users the abuse monitor flagged", "admin",
            {"200": json_answer("Flagged users", schema("Flags")), **errors(admin_errors)},
            security=admin,
        ),
        *board_operations(settings, board_q),
        Operation(
            "get", c.HEALTH_PATH, "health", "Liveness", "operations",
            {"200": json_answer("The process is up", schema("Health"))},
        ),
        Operation(
            "get", c.READY_PATH, "ready",
            "Readiness: serving and the action log reachable", "operations",
            {"200": json_answer("Ready", schema("Ready")),
             "503": json_answer(
                 "Not ready: the action log is unreachable, a task failed, or draining",
                 schema("Ready"))},
        ),
        Operation(
            "get", c.METRICS_PATH, "metrics", "Prometheus metrics", "operations",
            {"200": {"description": "Prometheus text exposition format",
                     "headers": headers(),
                     "content": {"text/plain": {"schema": {"type": "string"}}}}},
        ),
        Operation(
            "get", c.OPENAPI_PATH, "openapi", "This document", "operations",
            {"200": json_answer("The OpenAPI 3.1 description", {
                "type": "object", "required": ["openapi", "info", "paths"],
            })},
        ),
        Operation(
            "get", c.PAGE_PATH, "page", "The live leaderboard page", "live",
            {"200": {"description": "A plain HTML page: WebSocket, then SSE, then polling",
                     "headers": headers("Cache-Control"),
                     "content": {"text/html": {"schema": {"type": "string"}}}}},
        ),
        *(
            Operation(
                "get", path, op_id, summary, "live",
                {"200": {"description": "The file, typed by its extension",
                         "headers": headers("Cache-Control"),
                         "content": {"*/*": {"schema": {"type": "string"}}}},
                 **errors({404: MISSING})},
                parameters=[{"name": "name", "in": "path", "required": True,
                             "schema": {"type": "string"}, "description": "The file's name."}],
            )
            for path, op_id, summary in (
                (c.STATIC_PATH, "pageFile", "A file of the live page (scripts, style, icon)"),
                (c.SDK_PATH, "sdkFile", "A file of the JavaScript SDK the page runs on"),
            )
        ),
        Operation(
            "get", c.FAVICON_PATH, "favicon", "The page's icon", "live",
            {"200": {"description": "The SVG icon (as `/static/favicon.svg`)",
                     "headers": headers("Cache-Control"),
                     "content": {"image/svg+xml": {"schema": {"type": "string"}}}}},
        ),
        Operation(
            "get", c.DOCS_PATH, "docs", "This reference, as a page", "operations",
            {"200": {"description": "A page that renders the OpenAPI document",
                     "headers": headers("Cache-Control"),
                     "content": {"text/html": {"schema": {"type": "string"}}}}},
        ),
    ]


def board_operations(settings: Settings, board_q: Schema) -> list[Operation]:
    """SPEC §11: the boards, a friends view, and the administrator's board changes."""
    bearer: Security = [{"bearerAuth": []}]
    reader = [{}, {"bearerAuth": []}] if settings.leaderboard.public else bearer
    admin = [{"bearerAuth": [settings.auth.admin_scope]}]
    reader_errors = {400: BAD, 401: UNAUTH, 404: MISSING, 429: LIMITED}
    body_errors = {400: BAD, 401: UNAUTH, 403: FORBID, 408: TIMEOUT, 413: TOO_LARGE,
                   415: MEDIA, 503: BUSY}
    board_path = {"name": "board", "in": "path", "required": True,
                  "schema": {"type": "string", "pattern": ecma(BOARD), "maxLength": MAX_BOARD},
                  "description": "A board id: 1-64 of a-z, 0-9, '_' and '-'.",
                  "examples": {"global": {"value": "global"}}}
    changed = json_answer("The board after the change, and the record's seq",
                          schema("BoardChange"))
    return [
        Operation(
            "get", c.BOARDS_PATH, "getBoards", "Every board, its current period", "boards",
            {"200": json_answer("The boards", schema("Boards")),
             **errors({401: UNAUTH, 429: LIMITED})},
            security=reader,
            description="`period` is null for a board without periods and once it closed.",
        ),
        Operation(
            "get", c.PERIODS_PATH, "getPeriods", "A board's closed periods", "boards",
            {"200": json_answer("Closed periods, newest first, each with its top 3",
                                schema("Periods")),
             **errors({400: BAD, 401: UNAUTH, 404: MISSING, 429: LIMITED})},
            security=reader, parameters=[
                board_path,
                query("limit", integer(1, c.MAX_PERIODS, default=c.DEFAULT_PERIODS),
                      "How many periods."),
                query("before", {"type": "string", "pattern": ecma(PERIOD)},
                      "`next` of the previous answer: periods closed before that "
                      "one (404 when it is not a closed period of the board).")],
        ),
        Operation(
            "get", c.LEADERBOARD_USERS_PATH, "getLeaderboardUsers",
            "Some users' ranks on a board (a friends view)", "leaderboard",
            {"200": json_answer("Those of the users who are on the board, in rank order",
                                schema("LeaderboardUsers")),
             **errors(reader_errors)},
            security=reader, parameters=[
                {"name": "ids", "in": "query", "required": True,
                 "schema": {"type": "string", "pattern": ecma(
                     f"{ID_CHARS}{{1,{MAX_ID}}}(,{ID_CHARS}{{1,{MAX_ID}}}){{0,"
                     f"{c.MAX_FRIENDS - 1}}}")},
                 "description": f"1-{c.MAX_FRIENDS} user ids (or pseudonyms), separated "
                                "by commas; unknown ids are left out."},
                board_q, period_query()],
        ),
        Operation(
            "put", c.ADMIN_BOARD_PATH, "putBoard", "Create a board, or retitle it", "admin",
            {"200": changed,
             **errors({**body_errors, 409: ("BOARD_CONFLICT",)})},
            security=admin, parameters=[board_path], request=BoardRequest,
            description=(
                "A logged record: followers and restarts see the board. An existing board "
                "keeps what is not given; only its title and a later end may change (409). "
                "A bad definition is 400, naming the key."),
        ),
        Operation(
            "post", c.RESET_PATH, "resetBoard", "Close the board's current period now",
            "admin",
            {"200": changed,
             **errors({**body_errors, 404: MISSING, 409: ("BOARD_CLOSED",)})},
            security=admin, parameters=[board_path], request=ReasonRequest,
            description="The next period takes the schedule's id with a suffix (`.2`) and "
                        "starts empty; 409 once the board's season is over.",
        ),
        Operation(
            "delete", c.STANDING_PATH, "removeStanding",
            "Take a user off the board's current period", "admin",
            {"200": json_answer("The removal as logged", schema("StandingRemoved")),
             **errors({**body_errors, 404: MISSING})},
            security=admin, parameters=[board_path, user_path(me=False)],
            request=ReasonRequest,
            description="404 when the user is not on the board. They may score again, "
                        "from nothing.",
        ),
        Operation(
            "post", c.EXCLUSIONS_PATH, "excludeFromPeriod",
            "Take a user out of a closed period's standings", "admin",
            {"200": json_answer("The exclusion as logged", schema("PeriodExclusion")),
             **errors({**body_errors, 404: MISSING})},
            security=admin, parameters=[board_path, {
                "name": "period", "in": "path", "required": True,
                "schema": {"type": "string", "pattern": ecma(PERIOD)},
                "description": "A closed period of the board."}],
            request=ExclusionRequest,
            description="The others close up (ranks as the board's `ranks` rule); the "
                        "period's archive is re-ranked right after the record commits. "
                        "404 when the period is not a closed one of the board or the "
                        "user is not in its standings (so also once excluded).",
        ),
    ]
