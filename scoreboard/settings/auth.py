"""Who may call (`[auth]`: tokens, identity providers) and signed action proofs
(`[proofs]`)."""

from __future__ import annotations

from typing import Annotated, Literal, get_args

import msgspec

from scoreboard.settings.section import Section, key, refuse

# Every algorithm a token may be signed with; `none` is never one of them.
AuthAlgorithm = Literal["HS256", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                        "ES256", "ES384", "ES512", "EdDSA"]
ProofAlgorithm = Literal["HS256", "ES256", "EdDSA"]
AUTH_ALGORITHMS: tuple[str, ...] = get_args(AuthAlgorithm)
PROOF_ALGORITHMS: tuple[str, ...] = get_args(ProofAlgorithm)
URL = r"^(https?://|$)"
URL_WORDS = "an https:// (or http://) URL or empty"


class PublicKey(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A public key: `pem` inline, or `path` to a PEM file (relative to the config file),
    read once at load."""

    alg: str
    pem: str = ""
    kid: str | None = None
    path: str = ""


def check_keys(section: str, keys: tuple[PublicKey, ...], allowed: tuple[str, ...]) -> None:
    for i, k in enumerate(keys):
        if k.alg not in allowed[1:]:
            refuse(f"{section}.public_keys[{i}].alg", f"expected one of {', '.join(allowed[1:])}")
        if not (k.pem or k.path):
            refuse(f"{section}.public_keys[{i}]", "expected a PEM public key in pem or path")


def check_secret(name: str, secret: str) -> None:
    if secret and len(secret.encode()) < 32:
        refuse(name, "must be at least 32 bytes for HS256")


class AuthSettings(Section, frozen=True):
    jwt_secret: Annotated[str, key(
        "HS256 secret, at least 32 bytes; empty: generated on first start and kept in "
        "data_dir/jwt-secret (0600).", env="SCOREBOARD_JWT_SECRET")] = ""
    algorithms: Annotated[tuple[AuthAlgorithm, ...], key(
        "Algorithms a token may be signed with.")] = ("HS256",)
    issuer: Annotated[str, key("The expected iss claim (empty: not checked).")] = ""
    audience: Annotated[str, key("The expected aud claim (empty: not checked).")] = ""
    leeway_seconds: Annotated[float, key("Clock skew allowed on exp and nbf (seconds).",
                                         ge=0, le=300)] = 30.0
    max_token_bytes: Annotated[int, key("Longest accepted token (bytes).",
                                        ge=256, le=65536)] = 4096
    token_ttl_seconds: Annotated[int, key("Lifetime of tokens minted by `scoreboard token`.",
                                          ge=1, le=366 * 86400)] = 86400
    public_keys: Annotated[tuple[PublicKey, ...], key(
        "Public keys (RS256/384/512, PS256/384/512, ES256/384/512, EdDSA): "
        "[[auth.public_keys]] alg = \"ES256\", kid = \"k1\", pem = \"…\" or path = \"…\".")] = ()
    admin_scope: Annotated[str, key("The scope of administrators.",
                                    min_length=1)] = "scoreboard:admin"
    service_scope: Annotated[str, key("The scope of trusted backends.",
                                      min_length=1)] = "scoreboard:service"
    claims_cache_size: Annotated[int, key("Verified tokens remembered.",
                                          ge=0, le=10_000_000)] = 10000
    jwks_url: Annotated[str, key("An identity provider's published key set (JWKS).",
                                 pattern=URL, expected=URL_WORDS)] = ""
    oidc_issuer: Annotated[str, key(
        "An OpenID Connect issuer whose /.well-known/openid-configuration names its keys "
        "(and fixes the expected iss).", pattern=URL, expected=URL_WORDS)] = ""
    local_tokens: Annotated[bool, key(
        "With a provider (jwks_url, oidc_issuer or public_keys) the local HS256 secret "
        "verifies no token, user or admin, unless this is true.")] = False
    scope_claim: Annotated[str, key(
        "A claim path read for scopes beside scope/scp, e.g. realm_access.roles (Keycloak) "
        "or cognito:groups (Cognito).")] = ""
    name_claim: Annotated[str, key("The display name's claim path; empty: name, then "
                                   "preferred_username.")] = ""
    jwks_timeout_seconds: Annotated[float, key("Per-request timeout of a key-set fetch.",
                                               ge=0.1, le=120.0)] = 5.0
    jwks_max_bytes: Annotated[int, key("Size cap of a fetched key set (bytes).",
                                       ge=1024, le=16 * 1024 * 1024)] = 262144
    jwks_ttl_seconds: Annotated[float, key(
        "Key-set lifetime when the provider sends no Cache-Control max-age.",
        ge=1.0, le=7 * 86400.0)] = 3600.0
    jwks_min_ttl_seconds: Annotated[float, key("The shortest key-set lifetime.",
                                               ge=1.0, le=7 * 86400.0)] = 60.0
    jwks_max_ttl_seconds: Annotated[float, key("The longest key-set lifetime.",
                                               ge=1.0, le=7 * 86400.0)] = 86400.0
    jwks_refetch_interval_seconds: Annotated[float, key(
        "At most one re-fetch per this many seconds for tokens with an unknown kid.",
        ge=0.0, le=86400.0)] = 30.0

    @property
    def provider(self) -> bool:
        """Tokens come from an identity provider (published keys or configured PEMs)."""
        return bool(self.jwks_url or self.oidc_issuer or self.public_keys)

    def __post_init__(self) -> None:
        check_secret("auth.jwt_secret", self.jwt_secret)
        check_keys("auth", self.public_keys, AUTH_ALGORITHMS)
        if self.jwks_min_ttl_seconds > self.jwks_max_ttl_seconds:
            refuse("auth.jwks_min_ttl_seconds", "must not exceed auth.jwks_max_ttl_seconds")
        if self.oidc_issuer and self.issuer and self.issuer != self.oidc_issuer:
            refuse("auth.issuer", "leave it empty or equal to auth.oidc_issuer, which fixes "
                   "the expected issuer")


class ProofSettings(Section, frozen=True):
    """One-time signed tokens from a trusted backend, for rules with proof = "required"."""

    secret: Annotated[str, key(
        "HS256 secret, at least 32 bytes; empty: generated once in data_dir/proof-secret "
        "(0600).", env="SCOREBOARD_PROOF_SECRET")] = ""
    algorithms: Annotated[tuple[ProofAlgorithm, ...], key(
        "Algorithms a proof may be signed with.")] = ("HS256",)
    public_keys: Annotated[tuple[PublicKey, ...], key(
        "Backend public keys for ES256/EdDSA: [[proofs.public_keys]] alg = \"ES256\", "
        "pem = \"…\" or path = \"…\".")] = ()
    max_ttl_seconds: Annotated[int, key(
        "Proofs living longer are refused (bounds the memory of spent nonces).",
        ge=1, le=86400)] = 600
    ttl_seconds: Annotated[int, key("Lifetime of proofs minted by `scoreboard proof`.",
                                    ge=1, le=86400)] = 120

    def __post_init__(self) -> None:
        check_secret("proofs.secret", self.secret)
        check_keys("proofs", self.public_keys, PROOF_ALGORITHMS)
        if self.ttl_seconds > self.max_ttl_seconds:
            refuse("proofs.ttl_seconds", "must not exceed proofs.max_ttl_seconds")
