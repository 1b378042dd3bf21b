"""Settings: layering, conversion, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from scoreboard.settings.model import SettingsError, load_settings


def test_defaults() -> None:
    s = load_settings(environ={})
    assert (s.server.host, s.server.http_port, s.server.ws_port) == ("127.0.0.1", 8080, 8081)
    assert s.server.database_url == "" and str(s.server.data_dir) == "data"
    assert "WIN_MATCH" in s.rules and s.rules["BOSS_DEFEAT"].proof_required


def test_environment_and_overrides_layer_in_order(tmp_path: Path) -> None:
    layer = tmp_path / "site.toml"
    layer.write_text('[server]\nhttp_port = 9000\n[rules.NEW_THING]\npoints = 3\n')
    s = load_settings(
        {"server.ws_port": "9100"},
        environ={"SCOREBOARD_CONFIG": str(layer), "SCOREBOARD_HTTP_PORT": "9001",
                 "SCOREBOARD_WRITER__MAX_BATCH": "64", "SCOREBOARD_DATA_DIR": "/tmp/x"},
    )
    assert (s.server.http_port, s.server.ws_port, s.writer.max_batch) == (9001, 9100, 64)
    assert s.rules["NEW_THING"].points == 3 and str(s.server.data_dir) == "/tmp/x"


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"SCOREBOARD_HTTP_PORT": "eighty"}, "server.http_port"),
        ({"SCOREBOARD_HTTP_PORT": "70000"}, "server.http_port"),
        ({"SCOREBOARD_DATABASE_URL": "mysql://x"}, "server.database_url"),
        ({"SCOREBOARD_JWT_SECRET": "short"}, "auth.jwt_secret"),
        ({"SCOREBOARD_WRITER__QUEUE_SIZE": "0"}, "writer.queue_size"),
        ({"SCOREBOARD_LEADERBOARD__PUBLIC": "maybe"}, "leaderboard.public"),
        ({"SCOREBOARD_NOPE__THING": "1"}, "nope.thing"),
        ({"SCOREBOARD_CONFIG": "/does/not/exist.toml"}, "SCOREBOARD_CONFIG"),
    ],
)
def test_bad_values_name_the_key(env: dict[str, str], key: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(environ=env)
    assert key in str(info.value)


def test_unknown_key_in_a_file(tmp_path: Path) -> None:
    layer = tmp_path / "bad.toml"
    layer.write_text("[server]\nhttp_prot = 1\n")
    with pytest.raises(SettingsError, match=r"server\.http_prot"):
        load_settings(environ={"SCOREBOARD_CONFIG": str(layer)})


def test_bad_rule_in_a_file(tmp_path: Path) -> None:
    layer = tmp_path / "bad.toml"
    layer.write_text("[rules.CHEAT]\npoints = -5\n")
    with pytest.raises(SettingsError, match=r"rules\.CHEAT\.points"):
        load_settings(environ={"SCOREBOARD_CONFIG": str(layer)})
