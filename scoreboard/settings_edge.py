"""Settings of the service's edge with the outside world: identity-provider keys in
`[auth]`, and browsers on other origins (`[cors]`). Checked like every other setting,
naming the key in each error."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scoreboard.settings_section import Section, SettingsError


@dataclass(frozen=True, slots=True)
class CorsSettings:
    """Browsers on other origins (`[cors]`); no origins: CORS is off."""

    allow_origins: frozenset[str]
    max_age: int


def read_provider(a: Section) -> dict[str, Any]:
    """The identity-provider keys of `[auth]`, checked."""
    out: dict[str, Any] = {
        "jwks_url": a.text("jwks_url"),
        "oidc_issuer": a.text("oidc_issuer"),
        "local_tokens": a.flag("local_tokens"),
        "scope_claim": a.text("scope_claim"),
        "name_claim": a.text("name_claim"),
        "jwks_timeout_seconds": a.number("jwks_timeout_seconds", 0.1, 120.0),
        "jwks_max_bytes": a.integer("jwks_max_bytes", 1024, 16 * 1024 * 1024),
        "jwks_ttl_seconds": a.number("jwks_ttl_seconds", 1.0, 7 * 86400.0),
        "jwks_min_ttl_seconds": a.number("jwks_min_ttl_seconds", 1.0, 7 * 86400.0),
        "jwks_max_ttl_seconds": a.number("jwks_max_ttl_seconds", 1.0, 7 * 86400.0),
        "jwks_refetch_interval_seconds": a.number("jwks_refetch_interval_seconds", 0.0, 86400.0),
    }
    for key in ("jwks_url", "oidc_issuer"):
        if out[key] and not out[key].startswith(("https://", "http://")):
            raise SettingsError(f"auth.{key}: expected an https:// (or http://) URL")
    if out["jwks_min_ttl_seconds"] > out["jwks_max_ttl_seconds"]:
        raise SettingsError("auth.jwks_min_ttl_seconds: must not exceed auth.jwks_max_ttl_seconds")
    issuer = a.text("issuer")
    if out["oidc_issuer"] and issuer and issuer != out["oidc_issuer"]:
        raise SettingsError("auth.issuer: leave it empty or equal to auth.oidc_issuer, which "
                            "fixes the expected issuer")
    return out


def read_cors(c: Section) -> CorsSettings:
    origins = []
    for origin in c.strs("allow_origins"):
        scheme, sep, rest = origin.partition("://")
        if (scheme not in ("http", "https") or not sep or not rest or "/" in rest
                or origin != origin.strip() or "*" in origin):
            raise SettingsError(
                f"cors.allow_origins: {origin!r} is not an exact origin like "
                "https://app.example.com (scheme, host, optional port; no path, no *)"
            )
        origins.append(origin.lower())
    return CorsSettings(frozenset(origins), c.integer("max_age", 0, 86400))
