"""The defaults are the model's; the action rules ship inside the package; the example
override in config/ loads."""

from __future__ import annotations

from pathlib import Path

import scoreboard
from scoreboard.settings.model import RULES_FILE, load_settings

ROOT = Path(__file__).resolve().parents[2]


def test_rules_are_read_from_the_package() -> None:
    assert Path(str(RULES_FILE)).parent == Path(scoreboard.__file__).parent / "settings"


def test_no_second_defaults_file() -> None:
    assert not (ROOT / "config" / "default.toml").exists()
    assert not (ROOT / "scoreboard" / "settings" / "defaults.toml").exists()


def test_the_example_override_loads() -> None:
    s = load_settings(environ={}, config_file=ROOT / "config" / "example.toml")
    assert s.server.host == "0.0.0.0" and s.leaderboard.boards == ("global", "eu", "us")
    assert s.rules["DAILY_QUEST"].points == 15 and "WIN_MATCH" in s.rules
    assert s.live.public_ws_url == "/api/v1/leaderboard/live"
