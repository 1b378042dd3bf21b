"""Settings: the packaged defaults (`scoreboard/settings/defaults.toml`), then the file named by
SCOREBOARD_CONFIG, then SCOREBOARD_* variables, then command-line overrides. Loaded once
into a frozen object; every bad value stops start-up with a message naming its key."""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from scoreboard.core.rules import AbuseLimits, RuleError, RuleSet
from scoreboard.settings.cluster import ClusterSettings, read_cluster
from scoreboard.settings.edge import (
    CorsSettings,
    EdgeSettings,
    PublicKey,
    read_cors,
    read_edge,
    read_provider,
    read_public_keys,
)
from scoreboard.settings.events import EventSettings, read_events
from scoreboard.settings.section import Section as _Section
from scoreboard.settings.section import SettingsError

__all__ = [
    "CorsSettings", "EdgeSettings", "PublicKey", "Settings", "SettingsError", "load_settings",
]

# Read from the installed package, so a wheel starts from any folder; config/default.toml
# is a copy for people to read (a test keeps the two identical).
DEFAULTS = resources.files("scoreboard.settings") / "defaults.toml"

# The variables SPEC §7 names; any other key is SCOREBOARD_<SECTION>__<KEY> (a nested
# table adds a level: SCOREBOARD_EVENTS__NATS__URL).
ENV_ALIASES = {
    "SCOREBOARD_HOST": "server.host",
    "SCOREBOARD_HTTP_PORT": "server.http_port",
    "SCOREBOARD_WS_PORT": "server.ws_port",
    "SCOREBOARD_DATA_DIR": "server.data_dir",
    "SCOREBOARD_DATABASE_URL": "server.database_url",
    "SCOREBOARD_JWT_SECRET": "auth.jwt_secret",
    "SCOREBOARD_PROOF_SECRET": "proofs.secret",
}


@dataclass(frozen=True, slots=True)
class ServerSettings:
    host: str
    http_port: int
    ws_port: int
    data_dir: Path
    database_url: str
    connect_timeout: float
    shutdown_grace: float
    trusted_proxies: tuple[str, ...]
    role: str = "writer"


ROLES = ("writer", "standby", "follower")


@dataclass(frozen=True, slots=True)
class LeaderboardSettings:
    public: bool
    boards: tuple[str, ...]
    default_limit: int
    max_limit: int
    max_radius: int


@dataclass(frozen=True, slots=True)
class AuthSettings:
    jwt_secret: str
    algorithms: tuple[str, ...]
    issuer: str
    audience: str
    leeway_seconds: float
    max_token_bytes: int
    token_ttl_seconds: int
    public_keys: tuple[PublicKey, ...]
    admin_scope: str
    service_scope: str
    claims_cache_size: int
    # An identity provider's published keys (empty: none); see `scoreboard.identity`.
    jwks_url: str = ""
    oidc_issuer: str = ""
    # With a provider (JWKS, OIDC or PEMs) the local HS256 secret verifies nothing unless this
    local_tokens: bool = False
    scope_claim: str = ""  # a claim path read for scopes beside scope/scp, e.g. realm_access.roles
    name_claim: str = ""  # a claim path for the display name; empty: name, preferred_username
    jwks_timeout_seconds: float = 5.0
    jwks_max_bytes: int = 262144
    jwks_ttl_seconds: float = 3600.0  # key-set lifetime without a Cache-Control max-age
    jwks_min_ttl_seconds: float = 60.0
    jwks_max_ttl_seconds: float = 86400.0
    jwks_refetch_interval_seconds: float = 30.0  # at most one unknown-kid re-fetch per this

    @property
    def provider(self) -> bool:
        """Tokens come from an identity provider (published keys or configured PEMs)."""
        return bool(self.jwks_url or self.oidc_issuer or self.public_keys)


@dataclass(frozen=True, slots=True)
class ProofSettings:
    secret: str
    algorithms: tuple[str, ...]
    public_keys: tuple[PublicKey, ...]
    max_ttl_seconds: int
    ttl_seconds: int


@dataclass(frozen=True, slots=True)
class WriterSettings:
    queue_size: int
    max_batch: int
    retry_seconds: float
    idempotency_retention_seconds: float
    idempotency_max_keys: int
    # A snapshot of the state after this many records, or this many seconds (0: not by
    # that measure; both 0: only on a clean shutdown).
    snapshot_every_records: int = 200_000
    snapshot_seconds: float = 300.0


@dataclass(frozen=True, slots=True)
class LimitSettings:
    max_body_bytes: int
    max_metadata_bytes: int
    user_per_minute: int
    ip_per_minute: int
    max_batch_actions: int  # actions in one trusted-backend batch
    max_batch_body_bytes: int  # the batch endpoint's own body cap


@dataclass(frozen=True, slots=True)
class LiveSettings:
    """WebSocket and SSE live updates (`[live]`)."""

    broadcast_interval: float
    ping_interval: float
    ping_timeout: float
    close_timeout: float
    sse_heartbeat: float
    max_connections: int
    max_connections_per_user: int
    max_connections_per_ip: int
    handshake_timeout: float
    socket_send_buffer: int
    send_buffer_cap: int
    stall_seconds: float
    max_message_bytes: int
    public_ws_url: str


@dataclass(frozen=True, slots=True)
class Settings:
    server: ServerSettings
    leaderboard: LeaderboardSettings
    auth: AuthSettings
    proofs: ProofSettings
    writer: WriterSettings
    limits: LimitSettings
    live: LiveSettings
    abuse: AbuseLimits
    rules: RuleSet = field(compare=False)
    events: EventSettings = field(compare=False)
    edge: EdgeSettings = field(compare=False)
    cluster: ClusterSettings = field(default_factory=ClusterSettings)
    cors: CorsSettings = field(default_factory=lambda: CorsSettings(frozenset(), 600))


def _read_toml(path: Path, what: str) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise SettingsError(f"{what}: file {str(path)!r} not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{what}: {path} is not valid TOML: {exc}") from None


def _merge(base: dict[str, Any], layer: Mapping[str, Any], prefix: str = "") -> None:
    for key, value in layer.items():
        name = f"{prefix}{key}"
        if prefix == "rules.":
            base[key] = value  # a layer may add new rules or replace one whole
        elif key not in base:
            raise SettingsError(f"{name}: unknown setting")
        elif isinstance(base[key], dict):
            if not isinstance(value, Mapping):
                raise SettingsError(f"{name}: expected a table")
            _merge(base[key], value, f"{name}.")
        else:
            base[key] = value


def _convert(name: str, default: Any, value: Any) -> Any:
    """Convert a string from the environment or a flag to the type of the default."""
    if not isinstance(value, str) or isinstance(default, str):
        return value
    text = value.strip()
    if isinstance(default, bool):
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise SettingsError(f"{name}: expected true or false, got {value!r}")
    if isinstance(default, int):
        try:
            return int(text)
        except ValueError:
            raise SettingsError(f"{name}: expected an integer, got {value!r}") from None
    if isinstance(default, float):
        try:
            return float(text)
        except ValueError:
            raise SettingsError(f"{name}: expected a number, got {value!r}") from None
    if isinstance(default, list):
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


def _set_path(tree: dict[str, Any], dotted: str, raw: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            raise SettingsError(f"{dotted}: unknown setting")
        node = child
    if parts[-1] not in node or isinstance(node[parts[-1]], dict):
        raise SettingsError(f"{dotted}: unknown setting")
    node[parts[-1]] = _convert(dotted, node[parts[-1]], raw)


# Every algorithm a token may be signed with; `none` is never one of them.
AUTH_ALGORITHMS = ("HS256", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                   "ES256", "ES384", "ES512", "EdDSA")
PROOF_ALGORITHMS = ("HS256", "ES256", "EdDSA")


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    config_file: str | Path | None = None,
) -> Settings:
    """Build the settings. `overrides` maps dotted keys to values (flags, tests)."""
    env = os.environ if environ is None else environ
    tree = tomllib.loads(DEFAULTS.read_text(encoding="utf-8"))
    layer_path = config_file or env.get("SCOREBOARD_CONFIG")
    base_dir = Path.cwd()
    if layer_path:
        layer_file = Path(layer_path)
        _merge(tree, _read_toml(layer_file, "SCOREBOARD_CONFIG"))
        base_dir = layer_file.resolve().parent
    for var, value in env.items():
        if not var.startswith("SCOREBOARD_") or var in ("SCOREBOARD_CONFIG",):
            continue
        dotted = ENV_ALIASES.get(var)
        if dotted is None and "__" in var:
            section, _, key = var[len("SCOREBOARD_"):].lower().partition("__")
            dotted = f"{section}.{key.replace('__', '.')}"  # EVENTS__NATS__URL
        if dotted is not None:
            _set_path(tree, dotted, value)
    for dotted, value in (overrides or {}).items():
        _set_path(tree, dotted, value)
    return build(tree, base_dir)


def build(tree: Mapping[str, Any], base_dir: Path) -> Settings:
    s = _Section(tree, "server")
    server = ServerSettings(
        host=s.text("host", allow_empty=False),
        http_port=s.integer("http_port", 0, 65535),
        ws_port=s.integer("ws_port", 0, 65535),
        data_dir=Path(s.text("data_dir", allow_empty=False)).expanduser(),
        database_url=s.text("database_url"),
        connect_timeout=s.number("connect_timeout", 0.0, 3600.0),
        shutdown_grace=s.number("shutdown_grace", 0.0, 600.0),
        trusted_proxies=s.strs("trusted_proxies"),
        role=s.text("role"),
    )
    if server.role not in ROLES:
        raise SettingsError(
            f"server.role: expected writer, standby or follower, got {server.role!r}"
        )
    if server.role != "writer" and not server.database_url.startswith(
        ("postgresql://", "postgres://")
    ):
        raise SettingsError(
            f"server.role: {server.role!r} needs PostgreSQL (server.database_url = "
            "postgresql://…); on SQLite only the writer role exists"
        )
    for entry in server.trusted_proxies:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise SettingsError(f"server.trusted_proxies: {entry!r} is not an address or "
                                "a CIDR range") from None
    if server.database_url and not server.database_url.startswith(
        ("postgresql://", "postgres://", "sqlite:", "memory:")
    ):
        raise SettingsError(
            "server.database_url: expected postgresql://…, sqlite:///path or empty for SQLite"
        )
    lb = _Section(tree, "leaderboard")
    boards = lb.strs("boards")
    leaderboard = LeaderboardSettings(
        public=lb.flag("public"),
        boards=boards if "global" in boards else ("global", *boards),
        default_limit=lb.integer("default_limit", 1, 100),
        max_limit=lb.integer("max_limit", 1, 100),
        max_radius=lb.integer("max_radius", 0, 100),
    )
    a = _Section(tree, "auth")
    algorithms = a.strs("algorithms")
    for alg in algorithms:
        if alg not in AUTH_ALGORITHMS:
            raise SettingsError(f"auth.algorithms: {alg!r} is not allowed")
    auth = AuthSettings(
        jwt_secret=a.text("jwt_secret"),
        algorithms=algorithms,
        issuer=a.text("issuer"),
        audience=a.text("audience"),
        leeway_seconds=a.number("leeway_seconds", 0, 300),
        max_token_bytes=a.integer("max_token_bytes", 256, 65536),
        token_ttl_seconds=a.integer("token_ttl_seconds", 1, 366 * 86400),
        public_keys=read_public_keys(tree["auth"]["public_keys"], base_dir, "auth",
                                 AUTH_ALGORITHMS),
        admin_scope=a.text("admin_scope", allow_empty=False),
        service_scope=a.text("service_scope", allow_empty=False),
        claims_cache_size=a.integer("claims_cache_size", 0, 10_000_000),
        **read_provider(a),
    )
    if auth.jwt_secret and len(auth.jwt_secret.encode()) < 32:
        raise SettingsError("auth.jwt_secret: must be at least 32 bytes for HS256")
    pr = _Section(tree, "proofs")
    proofs = ProofSettings(
        secret=pr.text("secret"),
        algorithms=pr.strs("algorithms"),
        public_keys=read_public_keys(tree["proofs"]["public_keys"], base_dir, "proofs",
                                 PROOF_ALGORITHMS),
        max_ttl_seconds=pr.integer("max_ttl_seconds", 1, 86400),
        ttl_seconds=pr.integer("ttl_seconds", 1, 86400),
    )
    for alg in proofs.algorithms:
        if alg not in PROOF_ALGORITHMS:
            raise SettingsError(f"proofs.algorithms: {alg!r} is not allowed")
    if proofs.secret and len(proofs.secret.encode()) < 32:
        raise SettingsError("proofs.secret: must be at least 32 bytes for HS256")
    if proofs.ttl_seconds > proofs.max_ttl_seconds:
        raise SettingsError("proofs.ttl_seconds: must not exceed proofs.max_ttl_seconds")
    w = _Section(tree, "writer")
    writer = WriterSettings(
        queue_size=w.integer("queue_size", 1, 10_000_000),
        max_batch=w.integer("max_batch", 1, 100_000),
        retry_seconds=w.number("retry_seconds", 0, 3600),
        idempotency_retention_seconds=w.number("idempotency_retention_seconds", 1, 366 * 86400),
        idempotency_max_keys=w.integer("idempotency_max_keys", 1, 100_000_000),
        snapshot_every_records=w.integer("snapshot_every_records", 0, 1_000_000_000),
        snapshot_seconds=w.number("snapshot_seconds", 0, 7 * 86400),
    )
    li = _Section(tree, "limits")
    limits = LimitSettings(
        max_body_bytes=li.integer("max_body_bytes", 256, 16 * 1024 * 1024),
        max_metadata_bytes=li.integer("max_metadata_bytes", 0, 1024 * 1024),
        user_per_minute=li.integer("user_per_minute", 0, 100_000_000),
        ip_per_minute=li.integer("ip_per_minute", 0, 100_000_000),
        max_batch_actions=li.integer("max_batch_actions", 1, 100_000),
        max_batch_body_bytes=li.integer("max_batch_body_bytes", 256, 64 * 1024 * 1024),
    )
    rules_table = tree.get("rules", {})
    if not isinstance(rules_table, Mapping):
        raise SettingsError("rules: expected tables of action rules")
    try:
        rules = RuleSet.from_config(rules_table)
    except RuleError as exc:
        raise SettingsError(str(exc)) from None
    ab = _Section(tree, "abuse")
    abuse = AbuseLimits(
        actions_per_minute=ab.integer("actions_per_minute", 0, 10_000_000),
        points_per_minute=ab.integer("points_per_minute", 0, 2**53 - 1),
        auto_freeze=ab.flag("auto_freeze"),
    )
    return Settings(server, leaderboard, auth, proofs, writer, limits, _live(tree), abuse, rules,
                    _events(tree), read_edge(_Section(tree, "edge")),
                    cluster=read_cluster(_Section(tree, "cluster")),
                    cors=read_cors(_Section(tree, "cors")))


def _events(tree: Mapping[str, Any]) -> EventSettings:
    nats = _Section(tree["events"], "nats")
    nats.section = "events.nats"
    try:
        return read_events(_Section(tree, "events"), nats)
    except ValueError as exc:  # names its key, like every other setting
        raise SettingsError(str(exc)) from None


def _live(tree: Mapping[str, Any]) -> LiveSettings:
    lv = _Section(tree, "live")
    live = LiveSettings(
        broadcast_interval=lv.number("broadcast_interval", 0.001, 10.0),
        ping_interval=lv.number("ping_interval", 0.05, 3600.0),
        ping_timeout=lv.number("ping_timeout", 0.05, 3600.0),
        close_timeout=lv.number("close_timeout", 0.0, 600.0),
        sse_heartbeat=lv.number("sse_heartbeat", 0.05, 3600.0),
        max_connections=lv.integer("max_connections", 0, 1_000_000),
        max_connections_per_user=lv.integer("max_connections_per_user", 0, 100_000),
        max_connections_per_ip=lv.integer("max_connections_per_ip", 0, 1_000_000),
        handshake_timeout=lv.number("handshake_timeout", 0.1, 600.0),
        socket_send_buffer=lv.integer("socket_send_buffer", 0, 64 * 1024 * 1024),
        send_buffer_cap=lv.integer("send_buffer_cap", 1024, 64 * 1024 * 1024),
        stall_seconds=lv.number("stall_seconds", 0.05, 3600.0),
        max_message_bytes=lv.integer("max_message_bytes", 128, 1024 * 1024),
        public_ws_url=lv.text("public_ws_url"),
    )
    url = live.public_ws_url
    if url and not url.startswith(("ws://", "wss://", "/")):
        raise SettingsError(
            "live.public_ws_url: expected ws://…, wss://…, a path starting with / or empty"
        )
    return live
