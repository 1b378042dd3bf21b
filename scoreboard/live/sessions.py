"""Open live connections by the user whose token opened them, so that revoking that
user's tokens ends them too (SPEC §6: WebSocket closed with 1008, SSE stream ended).

The writer tells `on_commit` after every committed batch; a `REVOKE_TOKENS` record
closes each connection of that user whose token was issued (`iat`) up to the record's
moment, or carries no `iat`. Anonymous viewers are not registered. One entry per open
authenticated connection, gone when it closes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from scoreboard.auth.tokens import Principal
from scoreboard.core.records import LogRecord, RevokeTokensRecord

log = logging.getLogger("scoreboard.live")

Close = Callable[[], None]


class Session:
    __slots__ = ("close", "iat", "user_id")

    def __init__(self, user_id: str, iat: float | None, close: Close) -> None:
        self.user_id = user_id
        self.iat = iat
        self.close = close


class LiveSessions:
    def __init__(self) -> None:
        self._by_user: dict[str, set[Session]] = {}
        self.closed = 0  # connections ended by a revocation (logs, tests)

    def add(self, principal: Principal | None, close: Close) -> Session | None:
        """Register a connection; `close` ends it. None for an anonymous viewer."""
        if principal is None:
            return None
        session = Session(principal.user_id, principal.iat, close)
        self._by_user.setdefault(principal.user_id, set()).add(session)
        return session

    def remove(self, session: Session | None) -> None:
        if session is None:
            return
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
                self.remove(session)
                self.closed += 1
                try:
                    session.close()
                except Exception:  # one connection's failure must not spare the others
                    log.exception("closing a revoked live connection failed")
        if user_id in self._by_user:
            log.info("tokens revoked: %d live connection(s) of the user stay open "
                     "(issued later)", len(self._by_user[user_id]))
