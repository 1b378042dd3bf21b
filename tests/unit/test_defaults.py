"""The defaults ship inside the package; config/default.toml is the copy people read."""

from __future__ import annotations

from pathlib import Path

import scoreboard
from scoreboard.settings.model import DEFAULTS

ROOT = Path(__file__).resolve().parents[2]


def test_config_default_toml_is_the_packaged_defaults() -> None:
    packaged = DEFAULTS.read_bytes()
    copy = (ROOT / "config" / "default.toml").read_bytes()
    assert copy == packaged, (
        "config/default.toml differs from scoreboard/settings/defaults.toml (the source); "
        "edit the packaged file and run: cp scoreboard/settings/defaults.toml config/default.toml"
    )


def test_defaults_are_read_from_the_package() -> None:
    assert Path(str(DEFAULTS)).parent == Path(scoreboard.__file__).parent / "settings"
