"""What a verified token says about its bearer: scopes and a display name.

Providers put scopes in different places: `scope` as a space-separated string (OAuth
2.0, Auth0, Cognito access tokens), `scp` as a string or a list (Azure AD, Okta), or
roles in a claim of their own (Keycloak's `realm_access.roles`, Cognito's
`cognito:groups`), which `auth.scope_claim` names as a dotted path.
"""

from __future__ import annotations

import re
from typing import Any

from scoreboard.core.names import visible

MAX_NAME = 64
MAX_SCOPES = 256  # a token listing more is read up to this many
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MISSING = object()


def claim_at(claims: dict[str, Any], path: str) -> Any:
    """The claim at `path`: a top-level name as it is (namespaced claims such as
    `https://example.com/roles` hold dots), else dotted steps into nested objects."""
    if not path:
        return None
    value = claims.get(path, _MISSING)
    if value is not _MISSING:
        return value
    node: Any = claims
    for step in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(step)
    return node


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return value.split()[:MAX_SCOPES]
    if isinstance(value, list):
        return [v for v in value[:MAX_SCOPES] if isinstance(v, str)]
    return []


def scopes(claims: dict[str, Any], scope_claim: str = "") -> frozenset[str]:
    found = _strings(claims.get("scope")) + _strings(claims.get("scp"))
    found += _strings(claims.get("scopes"))
    if scope_claim:
        found += _strings(claim_at(claims, scope_claim))
    return frozenset(found)


def clean_name(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    name = visible(value)[:MAX_NAME].strip()
    return name or None


def display_name(claims: dict[str, Any], name_claim: str = "") -> str | None:
    if name_claim:
        return clean_name(claim_at(claims, name_claim))
    return clean_name(claims.get("name")) or clean_name(claims.get("preferred_username"))
