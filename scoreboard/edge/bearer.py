"""Bearer tokens as HTTP, SSE and the WebSocket handshake receive them.

`Authorization: Bearer <token>`, or `?token=` where a transport allows it (browsers
cannot set headers on a WebSocket; that port logs no query strings). Every refusal is
`Unauthorized` and is counted by reason.
"""

from __future__ import annotations

from scoreboard.auth.tokens import Authenticator, AuthError, Principal
from scoreboard.edge.errors import Forbidden, Unauthorized
from scoreboard.runtime.metrics import Metrics


class Bearer:
    def __init__(self, auth: Authenticator, metrics: Metrics) -> None:
        self.auth = auth
        self.metrics = metrics

    def token(self, authorization: str | None, query_token: str | None = None) -> str | None:
        """The token sent, None if there is none, or `Unauthorized` if it is malformed."""
        if authorization is not None:
            scheme, _, value = authorization.partition(" ")
            value = value.strip()
            if scheme.lower() != "bearer" or not value:
                self.metrics.auth_failure("malformed")
                raise Unauthorized("the Authorization header must be 'Bearer <token>'")
            return value
        if query_token is not None:
            if not query_token:
                self.metrics.auth_failure("malformed")
                raise Unauthorized("the token parameter is empty")
            return query_token
        return None

    def principal(self, authorization: str | None, *, required: bool,
                  query_token: str | None = None) -> Principal | None:
        """Who is calling. A token that is sent must be valid even where none is needed."""
        token: str | None = None
        if authorization is not None and authorization[:7] == "Bearer ":
            token = authorization[7:].strip()  # the usual spelling, as `token` reads it
        if not token:
            token = self.token(authorization, query_token)
            if token is None:
                if required:
                    self.metrics.auth_failure("missing")
                    raise Unauthorized("a bearer token is required")
                return None
        try:
            return self.auth.verify(token)
        except AuthError as exc:
            self.metrics.auth_failure(exc.reason)
            raise Unauthorized(exc.message) from None

    def scoped(self, authorization: str | None, scope: str) -> Principal:
        """A caller holding `scope`, or `Unauthorized` / `Forbidden`."""
        principal = self.principal(authorization, required=True)
        assert principal is not None
        if scope not in principal.scopes:
            self.metrics.auth_failure("scope")
            raise Forbidden(f"this needs the {scope!r} scope")
        return principal
