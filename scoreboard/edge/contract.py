"""The API's contract, defined once: paths, limits, patterns and body fields.

Handlers and validation enforce these, the live page announces the paths, and the
OpenAPI document is built from them, so the three cannot drift apart. The bodies
themselves are declared in `scoreboard.edge.bodies` and `scoreboard.edge.replies`. Patterns are
written once in a spelling both Python's `re` and ECMA-262 (JSON Schema) read the same
way; Python gets `\\Z` at the end instead of `$`, which would also match before a
trailing newline.
"""

from __future__ import annotations

import re

# -- paths ---------------------------------------------------------------------------------

API = "/api/v1"
ACTIONS_PATH = f"{API}/scores/actions"
BATCH_PATH = f"{API}/scores/actions/batch"  # trusted backends (service scope)
EVENTS_PATH = f"{API}/events"  # the log as an event stream (service scope)
LEADERBOARD_PATH = f"{API}/leaderboard"
AROUND_PATH = f"{API}/leaderboard/around/{{userId}}"
STREAM_PATH = f"{API}/leaderboard/stream"
LIVE_PATH = f"{API}/leaderboard/live"  # the WebSocket port
MY_SCORE_PATH = f"{API}/users/me/score"
USER_SCORE_PATH = f"{API}/users/{{userId}}/score"
PRIVACY_PATH = f"{API}/users/me/privacy"
PROOFS_PATH = f"{API}/proofs"
LIVE_CONFIG_PATH = f"{API}/live-config"
ADMIN_USER_PATH = f"{API}/admin/users/{{userId}}"
ADJUST_PATH = f"{ADMIN_USER_PATH}/adjustments"
FREEZE_PATH = f"{ADMIN_USER_PATH}/freeze"
UNFREEZE_PATH = f"{ADMIN_USER_PATH}/unfreeze"
UNFLAG_PATH = f"{ADMIN_USER_PATH}/unflag"
HISTORY_PATH = f"{ADMIN_USER_PATH}/history"
REVOKE_PATH = f"{ADMIN_USER_PATH}/revoke-tokens"
FLAGS_PATH = f"{API}/admin/flags"
BOARDS_PATH = f"{API}/boards"
LEADERBOARD_USERS_PATH = f"{API}/leaderboard/users"  # a friends view
PERIODS_PATH = f"{API}/boards/{{board}}/periods"  # closed periods, newest first
DEFAULT_PERIODS = 10
MAX_PERIODS = 100
ADMIN_BOARD_PATH = f"{API}/admin/boards/{{board}}"
RESET_PATH = f"{ADMIN_BOARD_PATH}/reset"
STANDING_PATH = f"{ADMIN_BOARD_PATH}/users/{{userId}}"
EXCLUSIONS_PATH = f"{ADMIN_BOARD_PATH}/periods/{{period}}/exclusions"
HEALTH_PATH = "/health"
READY_PATH = "/ready"
METRICS_PATH = "/metrics"
OPENAPI_PATH = "/openapi.json"
PAGE_PATH = "/"
DOCS_PATH = "/docs"  # the browsable API reference
STATIC_PREFIX = "/static/"
STATIC_PATH = f"{STATIC_PREFIX}{{name}}"  # one file of the page's folder, no subfolders
SDK_PREFIX = f"{STATIC_PREFIX}sdk/"
SDK_PATH = f"{SDK_PREFIX}{{name}}"  # one file of the JavaScript SDK the page runs on
FAVICON_PATH = "/favicon.ico"  # browsers ask for it whatever the page links

DEFAULT_BOARD = "global"  # a body or query naming no board

# -- limits --------------------------------------------------------------------------------

MAX_ID = 128  # user ids, client action ids
MAX_BOARD = 64
MAX_ACTION_TYPE = 64
MAX_REASON = 500  # admin reasons
MAX_DEPTH = 4  # metadata nesting
HISTORY_LIMIT = 100  # records per history page
HISTORY_DEFAULT = 50
MAX_HISTORY_CURSOR = 2**48
DEFAULT_RADIUS = 5
MAX_FRIENDS = 100  # ids per GET /leaderboard/users
MAX_TITLE = 200  # a board's title
MAX_RESET = 100  # a board's reset: a cron expression at most this long
MAX_ZONE = 64  # an IANA time zone name
MAX_SEQ = 2**53 - 1  # minSeq on reads
MAX_QUERY = 8192  # WebSocket handshake query strings
MAX_NAME = 64  # display names given by a trusted backend
MAX_SEQ = 2**63 - 1  # event positions (`after`, `Last-Event-ID`)
EVENTS_DEFAULT = 100  # records per JSON page unless `limit` says otherwise
# the request head, on the HTTP port (the WebSocket port keeps websockets' own limits)
MAX_REQUEST_LINE = 8192  # longer: 400; kept apart from the field limit to tell them apart
MAX_HEADER_FIELD = 8190  # one header line; longer: 431
MAX_HEADERS = 100  # more: 431

# -- patterns (one spelling for Python and for JSON Schema) -----------------------------

PRINTABLE = r"[^\u0000-\u001F\u007F]+"  # no C0 controls, no DEL; lengths are separate
BOARD = r"[a-z0-9][a-z0-9_\-]{0,63}"
JWS = r"[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*"
REQUEST_ID = r"[A-Za-z0-9._:\-]{1,128}"
PERIOD = r"[A-Za-z0-9._:\-]{1,64}"  # a period's id: 2026-12-04, 2026-W49.2, season …


def ecma(pattern: str) -> str:
    return f"^{pattern}$"


def anchored(pattern: str) -> str:
    """The Python spelling: `\\Z`, since `$` also matches before a trailing newline. The
    OpenAPI components turn it back into `$` (`ecma`)."""
    return f"^{pattern}\\Z"


def compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(anchored(pattern))


PRINTABLE_RE = compiled(PRINTABLE)
BOARD_RE = compiled(BOARD)
PERIOD_RE = compiled(PERIOD)
JWS_RE = compiled(JWS)
REQUEST_ID_RE = compiled(REQUEST_ID)
