"""The settings model: every key's bounds, type, variables and error message, driven by
the model itself, and the generated configuration reference."""

from __future__ import annotations

from pathlib import Path

import pytest
from msgspec import inspect as mi

from scoreboard.settings.keys import Key, tables
from scoreboard.settings.model import Settings, SettingsError, load_settings
from scoreboard.settings.reference import COMMAND, reference

ROOT = Path(__file__).resolve().parents[2]
KEYS = [k for t in tables(Settings) for k in t.keys]
# Bounds that other keys narrow (ttl <= max_ttl, min <= max): their edges are refused by
# a cross-field check, which names the key as well.
NARROWED = {"proofs.ttl_seconds", "proofs.max_ttl_seconds", "auth.jwks_min_ttl_seconds",
            "auth.jwks_max_ttl_seconds"}
BOUNDED = [k for k in KEYS if isinstance(k.type, mi.IntType | mi.FloatType)]


def value_of(settings: Settings, key: Key) -> object:
    node: object = settings
    for part in key.name.split("."):
        node = getattr(node, part)
    return node


def test_the_model_has_every_section_and_key() -> None:
    names = {k.name for k in KEYS}
    assert len(KEYS) == len(names) == 118  # 109 and the nine keys of [boards.<id>]
    assert {"server.http_port", "events.nats.url", "auth.jwks_url", "cluster.secret",
            "abuse.auto_freeze", "cors.max_age"} <= names
    assert all(k.doc for k in KEYS), [k.name for k in KEYS if not k.doc]


def test_defaults_are_the_model_defaults() -> None:
    s = load_settings(environ={})
    for key in KEYS:
        if key.name.startswith("boards.<id>."):  # one table per board: a new one's defaults
            board = load_settings({"boards.x.title": ""}, environ={}).boards["x"]
            assert getattr(board, key.name.rsplit(".", 1)[1]) == key.default, key.name
            continue
        assert value_of(s, key) == key.default or key.name == "server.data_dir", key.name


@pytest.mark.parametrize("key", BOUNDED, ids=lambda k: k.name)
def test_every_bound_is_enforced_and_named(key: Key) -> None:
    t = key.type
    assert isinstance(t, mi.IntType | mi.FloatType) and t.ge is not None and t.le is not None
    step = 1 if isinstance(t, mi.IntType) else 0.001
    for outside in (t.ge - step, t.le + step):
        with pytest.raises(SettingsError) as info:
            load_settings({key.name: str(outside)}, environ={})
        assert str(info.value).startswith(f"{key.name}: expected "), info.value
    if key.name not in NARROWED:
        for edge in (t.ge, t.le):
            assert value_of(load_settings({key.name: str(edge)}, environ={}), key) == edge


@pytest.mark.parametrize("key", [k for k in KEYS if not isinstance(k.type, mi.StrType)],
                         ids=lambda k: k.name)
def test_a_value_of_the_wrong_type_is_refused_by_name(key: Key) -> None:
    bad: object = "not-a-number" if isinstance(key.type, mi.IntType | mi.FloatType) else 3
    if isinstance(key.type, mi.BoolType):
        bad = "maybe"
    with pytest.raises(SettingsError, match=rf"^{key.name}(\[0\])?: "):
        load_settings({key.name: bad}, environ={})


@pytest.mark.parametrize("key", BOUNDED, ids=lambda k: k.name)
def test_every_key_has_its_variable(key: Key) -> None:
    t = key.type
    assert isinstance(t, mi.IntType | mi.FloatType) and t.ge is not None
    value = key.default if key.name in NARROWED else t.ge
    for var in key.variables:
        assert value_of(load_settings(environ={var: str(value)}), key) == value


def test_the_short_variables() -> None:
    aliases = {k.alias: k.name for k in KEYS if k.alias}
    assert aliases == {
        "SCOREBOARD_HOST": "server.host", "SCOREBOARD_HTTP_PORT": "server.http_port",
        "SCOREBOARD_WS_PORT": "server.ws_port", "SCOREBOARD_DATA_DIR": "server.data_dir",
        "SCOREBOARD_DATABASE_URL": "server.database_url",
        "SCOREBOARD_JWT_SECRET": "auth.jwt_secret", "SCOREBOARD_PROOF_SECRET": "proofs.secret",
    }
    s = load_settings(environ={
        "SCOREBOARD_HOST": "0.0.0.0", "SCOREBOARD_WS_PORT": "0",
        "SCOREBOARD_DATABASE_URL": "sqlite:///x.db", "SCOREBOARD_JWT_SECRET": "j" * 32,
        "SCOREBOARD_PROOF_SECRET": "p" * 32, "SCOREBOARD_EVENTS__NATS__URL": "nats://n:4222",
        "SCOREBOARD_CORS__ALLOW_ORIGINS": "https://A.example, https://b.example:8443",
        "SCOREBOARD_LIVE__STALL_SECONDS": "2.5", "SCOREBOARD_CLUSTER__ENABLED": "yes",
        "SCOREBOARD_UNRELATED": "ignored", "SCOREBOARD_TEST_ENGINE": "ignored too",
    })
    assert (s.server.host, s.server.ws_port, s.server.database_url) == (
        "0.0.0.0", 0, "sqlite:///x.db")
    assert (s.auth.jwt_secret, s.proofs.secret) == ("j" * 32, "p" * 32)
    assert s.events.nats.url == "nats://n:4222" and s.live.stall_seconds == 2.5
    assert s.cors.allow_origins == {"https://a.example", "https://b.example:8443"}
    assert s.cluster.enabled is True


@pytest.mark.parametrize(("given", "message"), [
    ({"server.http_port": "x"}, "server.http_port: expected an integer from 0 to 65535, got 'x'"),
    ({"server.http_port": True}, "server.http_port: expected an integer from 0 to 65535, "
                                 "got True"),
    ({"live.broadcast_interval": "0"}, "live.broadcast_interval: expected a number from "
                                       "0.001 to 10, got 0.0"),
    ({"leaderboard.public": "maybe"}, "leaderboard.public: expected true or false, got 'maybe'"),
    ({"server.host": ""}, "server.host: expected a non-empty string, got ''"),
    ({"server.data_dir": ""}, "server.data_dir: expected a non-empty path, got ''"),
    ({"server.role": "boss"}, "server.role: expected one of follower, standby, writer, "
                              "got 'boss'"),
    ({"auth.algorithms": "HS256,none"}, "auth.algorithms[1]: expected one of ES256, ES384, "
     "ES512, EdDSA, HS256, PS256, PS384, PS512, RS256, RS384, RS512, got 'none'"),
    ({"server.database_url": "mysql://x"}, "server.database_url: expected postgresql://…, "
     "sqlite:///path or empty for SQLite, got 'mysql://x'"),
    ({"events.nats.subject_prefix": "a.*"}, "events.nats.subject_prefix: expected a NATS name "
     "(no spaces, * or >, no . at either end), got 'a.*'"),
    ({"events.nats.stream": "A.B"}, "events.nats.stream: a stream name may not contain '.'"),
    ({"server.role": "follower"}, "server.role: 'follower' needs PostgreSQL "
     "(server.database_url = postgresql://…); on SQLite only the writer role exists"),
    ({"server.trusted_proxies": "10.0.0.0/8,nope"}, "server.trusted_proxies: 'nope' is not "
     "an address or a CIDR range"),
    ({"auth.jwt_secret": "short"}, "auth.jwt_secret: must be at least 32 bytes for HS256"),
    ({"proofs.ttl_seconds": "700"}, "proofs.ttl_seconds: must not exceed "
                                    "proofs.max_ttl_seconds"),
    ({"auth.public_keys": [{"alg": "HS256", "pem": "x"}]}, "auth.public_keys[0].alg: expected "
     "one of RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA"),
    ({"auth.public_keys": [{"alg": "ES256", "pem": "x", "pme": "y"}]},
     "auth.public_keys[0]: object contains unknown field `pme`"),
    ({"auth.public_keys": [{"alg": "ES256", "pem": "no key"}]},
     "auth.public_keys[0]: expected a PEM public key in pem or path"),
    ({"rules.WIN_MATCH.points": "0"}, "rules.WIN_MATCH.points: must be between 1 and 1000000"),
    ({"server.nope": "1"}, "server.nope: unknown setting"),
    ({"server.http_port.x": "1"}, "server.http_port.x: unknown setting"),
    ({"events.nats": "x"}, "events.nats: unknown setting"),
])
def test_error_messages_name_the_key(given: dict[str, object], message: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(given, environ={})
    assert str(info.value) == message


@pytest.mark.parametrize(("text", "message"), [
    ("[nope]\nx = 1\n", "nope: unknown setting"),
    ("[server]\nhttp_prot = 1\n", "server.http_prot: unknown setting"),
    ("[events.nats]\nurll = 'x'\n", "events.nats.urll: unknown setting"),
    ("server = 3\n", "server: expected a table"),
    ("rules = 3\n", "rules: expected a table"),
    ("[server]\nhttp_port = '80'\n", "server.http_port: expected an integer from 0 to 65535, "
                                     "got '80'"),
    ("[server\n", "SCOREBOARD_CONFIG: "),
])
def test_a_bad_file_stops_start_up_naming_the_key(tmp_path: Path, text: str,
                                                  message: str) -> None:
    layer = tmp_path / "site.toml"
    layer.write_text(text)
    with pytest.raises(SettingsError) as info:
        load_settings(environ={"SCOREBOARD_CONFIG": str(layer)})
    assert str(info.value).startswith(message), info.value


def test_flags_win_over_variables_over_the_file(tmp_path: Path) -> None:
    layer = tmp_path / "site.toml"
    layer.write_text("[live]\nping_interval = 1.0\nping_timeout = 1.0\nstall_seconds = 1.0\n"
                     "[rules.WIN_MATCH]\npoints = 7\n")
    s = load_settings({"live.stall_seconds": 3.0, "rules.WIN_MATCH.points": "8"},
                      environ={"SCOREBOARD_LIVE__PING_TIMEOUT": "2",
                               "SCOREBOARD_LIVE__STALL_SECONDS": "2"},
                      config_file=layer)
    assert (s.live.ping_interval, s.live.ping_timeout, s.live.stall_seconds) == (1.0, 2.0, 3.0)
    assert s.rules["WIN_MATCH"].points == 8 and s.rules["WIN_MATCH"].quota is None
    assert "BOSS_DEFEAT" in s.rules  # a file's rule replaces one whole, the others stay


def test_public_key_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    pem = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"
    (tmp_path / "k.pem").write_text(pem)
    layer = tmp_path / "site.toml"
    layer.write_text('[[auth.public_keys]]\nalg = "ES256"\nkid = "k1"\npath = "k.pem"\n')
    (key,) = load_settings(environ={}, config_file=layer).auth.public_keys
    assert (key.alg, key.kid, key.pem) == ("ES256", "k1", pem)


def test_the_settings_are_frozen() -> None:
    s = load_settings(environ={})
    with pytest.raises(AttributeError):
        s.server.http_port = 1  # type: ignore[misc]


def test_the_configuration_reference_is_current() -> None:
    page = ROOT / "docs" / "configuration.md"
    assert page.read_text(encoding="utf-8") == reference(), (
        f"docs/configuration.md is stale; regenerate it with: {COMMAND}")
    assert all(f"| `{k.name.rsplit('.', 1)[-1]}` |" in reference() for k in KEYS)
