"""Settings of the service's edge with the outside world: socket deadlines and fair
shares (`[edge]`), identity-provider keys in `[auth]`, and browsers on other origins
(`[cors]`). Checked like every other setting,
naming the key in each error."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scoreboard.settings.section import Section, SettingsError


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


@dataclass(frozen=True, slots=True)
class EdgeSettings:
    """Deadlines and fair shares of the sockets (`[edge]`); seconds and counts."""

    header_timeout: float
    body_timeout: float
    body_read_timeout: float
    keepalive_timeout: float
    max_connections_per_ip: int
    reserved_fds: int


def read_edge(e: Section) -> EdgeSettings:
    return EdgeSettings(
        header_timeout=e.number("header_timeout", 0.1, 3600.0),
        body_timeout=e.number("body_timeout", 0.1, 3600.0),
        body_read_timeout=e.number("body_read_timeout", 0.1, 3600.0),
        keepalive_timeout=e.number("keepalive_timeout", 0.1, 86400.0),
        max_connections_per_ip=e.integer("max_connections_per_ip", 0, 1_000_000),
        reserved_fds=e.integer("reserved_fds", 16, 1_000_000),
    )


@dataclass(frozen=True, slots=True)
class PublicKey:
    alg: str
    pem: str
    kid: str | None = None


def read_public_keys(value: Any, base_dir: Path, section: str,
                     allowed: tuple[str, ...]) -> tuple[PublicKey, ...]:
    if not isinstance(value, list):
        raise SettingsError(f"{section}.public_keys: expected a list of tables")
    keys = []
    for i, item in enumerate(value):
        name = f"{section}.public_keys[{i}]"
        if not isinstance(item, Mapping) or not isinstance(item.get("alg"), str):
            raise SettingsError(f"{name}: expected a table with alg and pem or path")
        if item["alg"] not in allowed or item["alg"] == "HS256":
            raise SettingsError(f"{name}.alg: expected one of {', '.join(allowed[1:])}")
        pem = item.get("pem")
        if pem is None and isinstance(item.get("path"), str):
            path = (base_dir / item["path"]).expanduser()
            try:
                pem = path.read_text()
            except OSError as exc:
                raise SettingsError(f"{name}.path: cannot read {path}: {exc}") from None
        if not isinstance(pem, str) or "BEGIN" not in pem:
            raise SettingsError(f"{name}: expected a PEM public key in pem or path")
        kid = item.get("kid")
        keys.append(PublicKey(item["alg"], pem, kid if isinstance(kid, str) else None))
    return tuple(keys)
