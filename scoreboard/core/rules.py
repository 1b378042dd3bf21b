"""Action rules: which actionType is worth how many points, and how often a user may
report it. Loaded from the `[rules.*]` tables of the TOML config."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from scoreboard.core.errors import UnknownAction

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
ACTION_TYPE = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")
MAX_POINTS = 1_000_000
MAX_VALUE = 2**53 - 1


class RuleError(ValueError):
    """A rule in the config is malformed; the message names the key."""


def parse_duration(value: object, key: str) -> float:
    """Seconds from 90, 90.5, "90s", "15m", "1h" or "1d"."""
    if isinstance(value, bool):
        raise RuleError(f"{key}: expected a duration, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m.group(1)) * _UNIT[m.group(2)]
    else:
        raise RuleError(f"{key}: expected a duration like 90, '15m', '1h' or '1d', got {value!r}")
    if seconds <= 0:
        raise RuleError(f"{key}: duration must be positive, got {value!r}")
    return seconds


@dataclass(frozen=True, slots=True)
class Quota:
    limit: int
    window: float  # seconds, rolling


@dataclass(frozen=True, slots=True)
class Rule:
    action_type: str
    points: int
    quota: Quota | None = None
    proof_required: bool = False
    # value = "proof": the action scores the integer `val` its proof claims (or a trusted
    # batch item's `value`), within [min, max], instead of `points`
    valued: bool = False
    min: int = -MAX_VALUE
    max: int = MAX_VALUE


class RuleSet(Mapping[str, Rule]):
    """An immutable mapping actionType → Rule."""

    __slots__ = ("_rules", "longest_window")

    def __init__(self, rules: Mapping[str, Rule]) -> None:
        self._rules = dict(rules)
        self.longest_window = max(
            (r.quota.window for r in self._rules.values() if r.quota), default=0.0
        )

    def __getitem__(self, key: str) -> Rule:
        return self._rules[key]

    def get(self, key: str, default: Rule | None = None) -> Rule | None:  # type: ignore[override]
        return self._rules.get(key, default)  # (the Mapping's is two calls in Python)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._rules)

    def __len__(self) -> int:
        return len(self._rules)

    def unknown(self, action_type: str) -> UnknownAction:
        """The refusal of an actionType no rule defines; it names the ones that exist."""
        known = ", ".join(sorted(self._rules)) or "none"
        return UnknownAction(f'unknown actionType "{action_type}"; known: {known}')

    @classmethod
    def from_config(cls, table: Mapping[str, Any]) -> RuleSet:
        """Build from `{"WIN_MATCH": {"points": 20, "limit": 30, "window": "1h"}, …}`."""
        rules: dict[str, Rule] = {}
        for name, spec in table.items():
            key = f"rules.{name}"
            if not ACTION_TYPE.match(name):
                raise RuleError(f"{key}: action types are UPPER_SNAKE_CASE, 1-64 characters")
            if not isinstance(spec, Mapping):
                raise RuleError(f"{key}: expected a table")
            unknown = set(spec) - {"points", "limit", "window", "proof", "value", "min", "max"}
            if unknown:
                raise RuleError(f"{key}: unknown setting(s) {sorted(unknown)}")
            valued = spec.get("value", "points")
            if valued not in ("points", "proof"):
                raise RuleError(f"{key}.value: expected 'points' or 'proof', got {valued!r}")
            bounds = {b: spec.get(b, (-1 if b == "min" else 1) * MAX_VALUE) for b in ("min", "max")}
            for b, v in bounds.items():
                if isinstance(v, bool) or not isinstance(v, int) or abs(v) > MAX_VALUE:
                    raise RuleError(f"{key}.{b}: expected an integer within ±(2^53-1)")
            if bounds["min"] > bounds["max"]:
                raise RuleError(f"{key}.max: must be at least min")
            points = spec.get("points", 1 if valued == "proof" else None)
            if isinstance(points, bool) or not isinstance(points, int):
                raise RuleError(f"{key}.points: expected an integer")
            if not 0 < points <= MAX_POINTS:
                raise RuleError(f"{key}.points: must be between 1 and {MAX_POINTS}")
            quota = None
            if "limit" in spec or "window" in spec:
                limit = spec.get("limit")
                if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
                    raise RuleError(f"{key}.limit: expected a positive integer")
                if "window" not in spec:
                    raise RuleError(f"{key}.window: required with limit")
                quota = Quota(limit, parse_duration(spec["window"], f"{key}.window"))
            proof = spec.get("proof", "none")
            if proof not in ("none", "required"):
                raise RuleError(f"{key}.proof: expected 'none' or 'required'")
            rules[name] = Rule(name, points, quota, proof == "required", valued == "proof",
                               bounds["min"], bounds["max"])
        if not rules:
            raise RuleError("rules: at least one action rule is needed")
        return cls(rules)


@dataclass(frozen=True, slots=True)
class AbuseLimits:
    """Thresholds past which a user is flagged (`[abuse]`); 0 turns a threshold off.

    Counted per user per calendar minute of the writer's clock, over accepted actions.
    """

    actions_per_minute: int = 0
    points_per_minute: int = 0
    auto_freeze: bool = False

    @property
    def enabled(self) -> bool:
        return bool(self.actions_per_minute or self.points_per_minute)
