"""Who may open a live connection, to what, and how many may be open at once.

The checks WebSocket and SSE share, made before anything is upgraded or streamed:
query parameters, the token, and the connection caps (total, and per user for
authenticated viewers). A refusal carries the HTTP status and error code to answer
with. Admitted connections hold a `Ticket` until they close; the counts are per
`Gate`, which the live server owns (no process-global state).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from scoreboard import validation as v
from scoreboard.auth import Authenticator, AuthError, Principal
from scoreboard.metrics import Metrics
from scoreboard.settings import LeaderboardSettings, LiveSettings
from scoreboard.views import Views


class Refusal(Exception):
    """A live connection is refused before the upgrade; maps to one HTTP answer."""

    def __init__(self, status: int, code: str, message: str,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def _unauthorized(message: str) -> Refusal:
    return Refusal(401, "UNAUTHORIZED", message, {"WWW-Authenticate": "Bearer"})


@dataclass(frozen=True, slots=True)
class LiveRequest:
    """A checked request for live updates of the top `limit` of `board`."""

    board: str
    limit: int
    principal: Principal | None

    @property
    def user_id(self) -> str | None:
        return None if self.principal is None else self.principal.user_id


@dataclass(slots=True, eq=False)
class Ticket:
    """One admitted connection's place in the caps; released exactly once."""

    user_id: str | None
    released: bool = False


class Gate:
    def __init__(self, leaderboard: LeaderboardSettings, live: LiveSettings,
                 auth: Authenticator, views: Views, metrics: Metrics) -> None:
        self.leaderboard = leaderboard
        self.live = live
        self.auth = auth
        self.views = views
        self.metrics = metrics
        self.total = 0
        self.per_user: dict[str, int] = {}
        self.closed = False

    # -- request checks ------------------------------------------------------------------

    def check(self, query: Mapping[str, str], authorization: str | None, *,
              query_token: bool) -> LiveRequest:
        """Board, limit and token of a live request, or `Refusal` (401, 400, 404).

        The token comes from `Authorization: Bearer`, or from `?token=` where
        `query_token` allows it (the WebSocket port, which logs no query strings).
        A token that is given must be valid, even for a public board.
        """
        principal = self._principal(query, authorization, query_token=query_token)
        try:
            board = v.board_name(query.get("board"))
            lb = self.leaderboard
            limit = v.int_param(query.get("limit"), "limit", lb.default_limit, 1, lb.max_limit)
        except v.BadRequest as exc:
            raise Refusal(400, "INVALID_REQUEST", str(exc)) from None
        if self.views.ranking(board) is None:
            raise Refusal(404, "NOT_FOUND", f"no board {board!r}")
        return LiveRequest(board, limit, principal)

    def _principal(self, query: Mapping[str, str], authorization: str | None, *,
                   query_token: bool) -> Principal | None:
        token: str | None = None
        if authorization is not None:
            scheme, _, value = authorization.partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                self.metrics.auth_failure("malformed")
                raise _unauthorized("the Authorization header must be 'Bearer <token>'")
            token = value.strip()
        elif query_token and "token" in query:
            token = query["token"]
            if not token:
                self.metrics.auth_failure("malformed")
                raise _unauthorized("the token parameter is empty")
        if token is None:
            if not self.leaderboard.public:
                self.metrics.auth_failure("missing")
                raise _unauthorized("a bearer token is required")
            return None
        try:
            return self.auth.verify(token)
        except AuthError as exc:
            self.metrics.auth_failure(exc.reason)
            raise _unauthorized(exc.message) from None

    # -- connection caps -----------------------------------------------------------------

    def admit(self, request: LiveRequest) -> Ticket:
        """Take a place under the caps, or `Refusal` 503 when there is none."""
        if self.closed:
            raise Refusal(503, "OVERLOADED", "the service is shutting down", {"Retry-After": "2"})
        cap = self.live.max_connections
        if cap and self.total >= cap:
            raise Refusal(503, "OVERLOADED", "too many live connections", {"Retry-After": "5"})
        user_id = request.user_id
        if user_id is not None:
            per_user = self.live.max_connections_per_user
            if per_user and self.per_user.get(user_id, 0) >= per_user:
                raise Refusal(
                    503, "OVERLOADED",
                    f"at most {per_user} live connections per user", {"Retry-After": "5"},
                )
            self.per_user[user_id] = self.per_user.get(user_id, 0) + 1
        self.total += 1
        return Ticket(user_id)

    def release(self, ticket: Ticket) -> None:
        if ticket.released:
            return
        ticket.released = True
        self.total -= 1
        user_id = ticket.user_id
        if user_id is not None:
            left = self.per_user[user_id] - 1
            if left:
                self.per_user[user_id] = left
            else:
                del self.per_user[user_id]
