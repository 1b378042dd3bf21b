"""Open long-lived connections by the token that opened them, so that each ends when
its token stops being valid (SPEC §6, "Sessions end"): WebSocket views, SSE views and
the event feed's streams.

Two things end a session, each with its reason for the client:

- a committed `REVOKE_TOKENS` record (the writer tells `on_commit` after every batch)
  ends each connection of that user whose token was issued (`iat`) up to the record's
  moment, or carries no `iat`;
- the token's expiry: one timer per connection, set when it opens to the token's `exp`
  plus the configured leeway (`auth.leeway_seconds`, the same allowance verification
  grants) and cancelled when it ends. No sweep over every connection.

Anonymous viewers are not registered. One entry per open authenticated connection,
gone when it ends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from scoreboard.auth.tokens import Principal
from scoreboard.core.records import LogRecord, RevokeTokensRecord

log = logging.getLogger("scoreboard.live")

REVOKED = "the token was revoked"
EXPIRED = "the token expired"

Close = Callable[[str], None]
"""Ends one connection; called once, with why (`REVOKED` or `EXPIRED`)."""


class Session:
    __slots__ = ("close", "iat", "timer", "user_id")

    def __init__(self, user_id: str, iat: float | None, close: Close) -> None:
        self.user_id = user_id
        self.iat = iat
        self.close = close
        self.timer: asyncio.TimerHandle | None = None


class LiveSessions:
    def __init__(self, leeway: float = 0.0, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.leeway = leeway
        self.clock = clock  # wall time: the clock `exp` is counted on
        self._by_user: dict[str, set[Session]] = {}
        self.closed = 0  # connections ended by a revocation (logs, tests)
        self.expired = 0  # connections ended by their token's expiry (logs, tests)

    @property
    def open(self) -> int:
        """Authenticated connections open now (tests)."""
        return sum(map(len, self._by_user.values()))

    def add(self, principal: Principal | None, close: Close) -> Session | None:
        """Register a connection; `close` ends it. None for an anonymous viewer.
        Called on the event loop: the expiry timer is the loop's."""
        if principal is None:
            return None
        session = Session(principal.user_id, principal.iat, close)
        self._by_user.setdefault(principal.user_id, set()).add(session)
        delay = max(0.0, principal.exp + self.leeway - self.clock())
        session.timer = asyncio.get_running_loop().call_later(delay, self._expire, session)
        return session

    def remove(self, session: Session | None) -> None:
        if session is None:
            return
        if session.timer is not None:
            session.timer.cancel()
            session.timer = None
        sessions = self._by_user.get(session.user_id)
        if sessions is not None:
            sessions.discard(session)
            if not sessions:
                del self._by_user[session.user_id]

    def on_commit(self, records: Sequence[LogRecord]) -> None:
        """Writer listener: end the connections a committed revocation covers."""
        if not self._by_user:
            return
        for r in records:
            if isinstance(r, RevokeTokensRecord):
                self.revoke(r.user_id, r.at)

    def revoke(self, user_id: str, at: float) -> None:
        for session in list(self._by_user.get(user_id, ())):
            if session.iat is None or session.iat <= at:
                self.closed += 1
                self._end(session, REVOKED)
        if user_id in self._by_user:
            log.info("tokens revoked: %d live connection(s) of the user stay open "
                     "(issued later)", len(self._by_user[user_id]))

    def _expire(self, session: Session) -> None:
        session.timer = None
        self.expired += 1
        self._end(session, EXPIRED)

    def _end(self, session: Session, why: str) -> None:
        self.remove(session)
        try:
            session.close(why)
        except Exception:  # one connection's failure must not spare the others
            log.exception("ending a live connection (%s) failed", why)
