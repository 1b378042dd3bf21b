"""Typed reads from one TOML table of the settings, naming `section.key` in every error."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class SettingsError(ValueError):
    """A setting is missing, unknown or malformed; the message names the key."""


class Section:
    """Typed reads from one TOML table, naming `section.key` in every error."""

    def __init__(self, tree: Mapping[str, Any], section: str) -> None:
        self.table = tree[section]
        self.section = section

    def _get(self, key: str) -> Any:
        return self.table[key]

    def text(self, key: str, *, allow_empty: bool = True) -> str:
        value = self._get(key)
        if not isinstance(value, str) or (not allow_empty and not value):
            raise SettingsError(f"{self.section}.{key}: expected a non-empty string")
        return value

    def integer(self, key: str, lo: int, hi: int) -> int:
        value = self._get(key)
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise SettingsError(
                f"{self.section}.{key}: expected an integer from {lo} to {hi}, got {value!r}"
            )
        return value

    def number(self, key: str, lo: float, hi: float) -> float:
        value = self._get(key)
        if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
            raise SettingsError(
                f"{self.section}.{key}: expected a number from {lo} to {hi}, got {value!r}"
            )
        return float(value)

    def flag(self, key: str) -> bool:
        value = self._get(key)
        if not isinstance(value, bool):
            raise SettingsError(f"{self.section}.{key}: expected true or false, got {value!r}")
        return value

    def strs(self, key: str) -> tuple[str, ...]:
        value = self._get(key)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise SettingsError(f"{self.section}.{key}: expected a list of strings")
        return tuple(value)
