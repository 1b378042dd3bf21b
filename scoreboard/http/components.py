"""The OpenAPI components and the building blocks of operations: parameters, headers
and error answers.

The body schemas are generated from the Structs that the handlers decode with
(`scoreboard.edge.bodies`) and that describe the answers (`scoreboard.edge.replies`);
only what depends on the settings is filled in here. Limits and patterns come from
`scoreboard.edge.contract`, the error codes each status can carry from the error table
in `scoreboard.edge.errors`, so the document says what the handlers enforce.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from scoreboard.edge.bodies import REQUESTS
from scoreboard.edge.contract import (
    BOARD,
    MAX_BOARD,
    MAX_DEPTH,
    MAX_ID,
    PRINTABLE,
    REQUEST_ID,
    ecma,
)
from scoreboard.edge.errors import JSON, codes_by_status
from scoreboard.edge.replies import REPLIES
from scoreboard.settings.model import Settings

Schema = dict[str, Any]


def ref(kind: str, name: str) -> Schema:
    return {"$ref": f"#/components/{kind}/{name}"}


def schema(name: str) -> Schema:
    return ref("schemas", name)


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


BOARD_TEXT = ("A board id: 1-64 of a-z, 0-9, '_' and '-', starting with a letter or "
              "digit. Boards come from the settings or from an administrator at run time "
              "(`PUT /api/v1/admin/boards/{board}`); `GET /api/v1/boards` lists them, and "
              "an id that names no board is 404.")


def board_schema(settings: Settings) -> Schema:
    """Any board id, not only the configured boards (an enum would refuse boards an
    administrator creates at run time); those are given as examples."""
    return {"type": "string", "default": "global", "pattern": ecma(BOARD),
            "maxLength": MAX_BOARD, "description": BOARD_TEXT,
            "examples": list(settings.leaderboard.boards)}


def query(name: str, schema: Schema, description: str) -> Schema:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}


def user_path(me: bool) -> Schema:
    text = "A user id (the `sub` of their tokens), 1-128 characters without control characters."
    if me:
        text += " `me` means the caller, and then a bearer token is required."
    return {"name": "userId", "in": "path", "required": True,
            "schema": {"type": "string", "minLength": 1, "maxLength": MAX_ID,
                       "pattern": ecma(PRINTABLE)},
            "description": text, "examples": {"user": {"value": "alice"}}}


def body_schemas(settings: Settings) -> dict[str, Schema]:
    """The request and response bodies, generated from their Structs, then narrowed by
    what the settings say (rules, boards, limits) and the error table."""
    _, generated = msgspec.json.schema_components(
        (*REQUESTS, *REPLIES), ref_template="#/components/schemas/{name}")
    schemas: dict[str, Schema] = _ecma(generated)
    codes = sorted({code for codes in codes_by_status().values() for code in codes})
    schemas["ErrorCode"] = {"type": "string", "enum": codes}
    for name in ("ErrorDetail", "ItemRefusal"):
        schemas[name]["properties"]["code"] = schema("ErrorCode")
    actions = sorted(settings.rules)
    for name in ("ActionRequest", "ProofRequest", "Proof"):
        schemas[name]["properties"]["actionType"]["enum"] = actions
    for name in ("ActionRequest", "AdjustRequest"):  # optional; null is the same as absent
        schemas[name]["properties"]["board"]["anyOf"][0] = board_schema(settings)
    limits = settings.limits
    for name in ("ActionRequest", "BatchAction"):
        schemas[name]["properties"]["metadata"]["anyOf"][0]["description"] = (
            f"Kept for audit: at most {limits.max_metadata_bytes} bytes as JSON, nested at "
            f"most {MAX_DEPTH} levels, no NUL.")
    schemas["ActionRequest"]["properties"]["proof"]["anyOf"][0]["maxLength"] = (
        settings.auth.max_token_bytes)
    ttl = schemas["ProofRequest"]["properties"]["ttlSeconds"]
    ttl.update(maximum=settings.proofs.max_ttl_seconds, default=settings.proofs.ttl_seconds)
    schemas["BatchRequest"]["properties"]["actions"]["maxItems"] = limits.max_batch_actions
    return schemas


def _ecma(value: Any, *, names: bool = False) -> Any:
    """Patterns as JSON Schema (ECMA-262) reads them: the Structs' `\\Z` is `$` there;
    the `title` keyword dropped (the component's name says it). `names`: `value` maps
    property names to schemas, where a property may well be called "title"."""
    if isinstance(value, dict):
        out = {k: _ecma(v, names=k == "properties" and not names) for k, v in value.items()
               if names or k != "title"}
        pattern = out.get("pattern")
        if isinstance(pattern, str) and pattern.endswith("\\Z"):
            out["pattern"] = pattern[:-2] + "$"
        return out
    if isinstance(value, list):
        return [_ecma(v) for v in value]
    return value


def components(settings: Settings) -> dict[str, Any]:
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
        "schemas": body_schemas(settings),
    }
