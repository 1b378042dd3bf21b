"""The defaults ship inside the package; config/default.toml is the copy people read."""

from __future__ import annotations

import tomllib
from pathlib import Path

import scoreboard
from scoreboard.core.rules import RuleSet
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


def test_every_shipped_rule_is_bounded_by_a_quota_or_a_proof() -> None:
    """Safe defaults: a signed-in user cannot award themselves points without bound."""
    with DEFAULTS.open("rb") as f:
        table = tomllib.load(f)["rules"]
    rules = RuleSet.from_config(table)
    assert rules, "the packaged defaults ship no rules"
    unbounded = [name for name, rule in rules.items()
                 if rule.quota is None and not rule.proof_required]
    assert unbounded == [], f"shipped rules without a quota or proof = \"required\": {unbounded}"
