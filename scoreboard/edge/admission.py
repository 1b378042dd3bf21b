"""Who may open a live connection, to what, and how many may be open at once.

The checks WebSocket and SSE share, made before anything is upgraded or streamed:
query parameters, the token, and the connection caps: total, per user for
authenticated viewers, and per client address (resolved through trusted proxies), so
no single address can hold the places everyone else needs. Refusals are the edge's
errors (`scoreboard.edge.errors`); each transport answers them through the same table.
Admitted connections hold a `Ticket` until they close; the counts are per `Gate`,
which the live server owns (no process-global state).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import NoReturn

from scoreboard.auth.tokens import Principal
from scoreboard.edge import validation as v
from scoreboard.edge.bearer import Bearer
from scoreboard.edge.errors import Unavailable, UnknownResource
from scoreboard.read.views import Views
from scoreboard.settings.model import LeaderboardSettings, LiveSettings

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
    ip: str | None = None
    released: bool = False


class Gate:
    def __init__(self, leaderboard: LeaderboardSettings, live: LiveSettings,
                 bearer: Bearer, views: Views, *, max_total: int | None = None,
                 on_refusal: Callable[[str], None] | None = None) -> None:
        self.leaderboard = leaderboard
        self.live = live
        self.bearer = bearer
        self.views = views
        # the total cap, lowered to what the descriptor budget allows
        self.max_total = live.max_connections if max_total is None else max_total
        self.on_refusal = on_refusal or (lambda _reason: None)
        self.total = 0
        self.per_user: dict[str, int] = {}
        self.per_ip: dict[str, int] = {}
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

    def admit(self, request: LiveRequest, ip: str | None = None) -> Ticket:
        """Take a place under the caps, or `Unavailable` (503) when there is none.
        `ip` is the client's address after trusted proxies (None: not counted)."""
        if self.closed:
            raise Unavailable("the service is shutting down", retry_after=SHUTDOWN_RETRY)
        cap = self.max_total
        if cap and self.total >= cap:
            self._refuse("live_total", "too many live connections")
        user_id = request.user_id
        per_user = self.live.max_connections_per_user
        if user_id is not None and per_user and self.per_user.get(user_id, 0) >= per_user:
            self._refuse("live_per_user", f"at most {per_user} live connections per user")
        per_ip = self.live.max_connections_per_ip
        if ip is not None and per_ip and self.per_ip.get(ip, 0) >= per_ip:
            self._refuse("live_per_ip", f"at most {per_ip} live connections per address")
        if user_id is not None:
            self.per_user[user_id] = self.per_user.get(user_id, 0) + 1
        if ip is not None:
            self.per_ip[ip] = self.per_ip.get(ip, 0) + 1
        self.total += 1
        return Ticket(user_id, ip)

    def _refuse(self, reason: str, message: str) -> NoReturn:
        self.on_refusal(reason)
        raise Unavailable(message, retry_after=BUSY_RETRY)

    def release(self, ticket: Ticket) -> None:
        if ticket.released:
            return
        ticket.released = True
        self.total -= 1
        _drop(self.per_user, ticket.user_id)
        _drop(self.per_ip, ticket.ip)


def _drop(counts: dict[str, int], key: str | None) -> None:
    if key is not None:
        left = counts[key] - 1
        if left:
            counts[key] = left
        else:
            del counts[key]
