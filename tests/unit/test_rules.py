"""Rules from config: parsing and the errors that name the key."""

from __future__ import annotations

from typing import Any

import pytest

from scoreboard.core.rules import Quota, RuleError, RuleSet, parse_duration


@pytest.mark.parametrize(
    ("raw", "seconds"), [(90, 90.0), (1.5, 1.5), ("90s", 90.0), ("15m", 900.0),
                         ("1h", 3600.0), ("24h", 86400.0), ("1d", 86400.0)],
)
def test_durations(raw: object, seconds: float) -> None:
    assert parse_duration(raw, "k") == seconds


@pytest.mark.parametrize("raw", ["", "1w", "-5", 0, -1, True, None, "h"])
def test_bad_durations_name_the_key(raw: object) -> None:
    with pytest.raises(RuleError, match=r"rules\.X\.window"):
        parse_duration(raw, "rules.X.window")


def test_rule_set_from_config() -> None:
    rules = RuleSet.from_config({
        "WIN_MATCH": {"points": 20, "limit": 30, "window": "1h"},
        "BOSS_DEFEAT": {"points": 100, "proof": "required"},
    })
    assert rules["WIN_MATCH"].quota == Quota(30, 3600.0)
    assert rules["BOSS_DEFEAT"].proof_required
    assert rules.longest_window == 3600.0


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"lower": {"points": 1}}, "rules.lower"),
        ({"A": {"points": 0}}, "rules.A.points"),
        ({"A": {"points": True}}, "rules.A.points"),
        ({"A": {"points": 1.5}}, "rules.A.points"),
        ({"A": {"points": 1, "limit": 0, "window": 5}}, "rules.A.limit"),
        ({"A": {"points": 1, "limit": 2}}, "rules.A.window"),
        ({"A": {"points": 1, "proof": "maybe"}}, "rules.A.proof"),
        ({"A": {"points": 1, "bonus": 3}}, "rules.A"),
        ({"A": 5}, "rules.A"),
        ({}, "rules"),
    ],
)
def test_bad_rules_name_the_key(table: dict[str, Any], key: str) -> None:
    with pytest.raises(RuleError) as info:
        RuleSet.from_config(table)
    assert str(info.value).startswith(key)
