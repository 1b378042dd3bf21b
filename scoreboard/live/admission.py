"""Who may open a live connection, to what, and how many may be open at once.

The checks WebSocket and SSE share, made before anything is upgraded or streamed:
query parameters, the token, and the connection caps (total, and per user for
authenticated viewers). Refusals are the edge's errors (`scoreboard.http.errors`);
each transport answers them through the same table. Admitted connections hold a
`Ticket` until they close; the counts are per `Gate`, which the live server owns (no
process-global state).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from scoreboard.auth import Principal
from scoreboard.http import validation as v
from scoreboard.http.bearer import Bearer
from scoreboard.http.errors import Unavailable, UnknownResource
from scoreboard.settings import LeaderboardSettings, LiveSettings
from scoreboard.views import Views

SHUTDOWN_RETRY = 2.0
BUSY_RETRY = 5.0


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
                 bearer: Bearer, views: Views) -> None:
        self.leaderboard = leaderboard
        self.live = live
        self.bearer = bearer
        self.views = views
        self.total = 0
        self.per_user: dict[str, int] = {}
        self.closed = False

    # -- request checks ------------------------------------------------------------------

    def check(self, query: Mapping[str, str], authorization: str | None, *,
              query_token: bool) -> LiveRequest:
        """Board, limit and token of a live request (401, 400 or 404 if refused).

        The token comes from `Authorization: Bearer`, or from `?token=` where
        `query_token` allows it (the WebSocket port, which logs no query strings).
        A token that is given must be valid, even for a public board.
        """
        principal = self.bearer.principal(
            authorization, required=not self.leaderboard.public,
            query_token=query.get("token") if query_token else None,
        )
        board = v.board_name(query.get("board"))
        lb = self.leaderboard
        limit = v.int_param(query.get("limit"), "limit", lb.default_limit, 1, lb.max_limit)
        if self.views.ranking(board) is None:
            raise UnknownResource(f"no board {board!r}")
        return LiveRequest(board, limit, principal)

    # -- connection caps -----------------------------------------------------------------

    def admit(self, request: LiveRequest) -> Ticket:
        """Take a place under the caps, or `Unavailable` (503) when there is none."""
        if self.closed:
            raise Unavailable("the service is shutting down", retry_after=SHUTDOWN_RETRY)
        cap = self.live.max_connections
        if cap and self.total >= cap:
            raise Unavailable("too many live connections", retry_after=BUSY_RETRY)
        user_id = request.user_id
        if user_id is not None:
            per_user = self.live.max_connections_per_user
            if per_user and self.per_user.get(user_id, 0) >= per_user:
                raise Unavailable(f"at most {per_user} live connections per user",
                                  retry_after=BUSY_RETRY)
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
