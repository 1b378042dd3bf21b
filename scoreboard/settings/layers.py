"""The layers of the settings, as one TOML-shaped tree: the packaged action rules, the file
named by SCOREBOARD_CONFIG (or --config), SCOREBOARD_* variables, then dotted overrides
(command-line flags, tests). Keys are checked against the model as they are layered;
strings from variables and flags are converted to the key's type where they can be."""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from msgspec import inspect as mi

from scoreboard.settings.keys import LISTS, PREFIX, Key, Table
from scoreboard.settings.section import SettingsError

CONFIG_VARIABLE = "SCOREBOARD_CONFIG"
RULES = "rules"
RULE_INTEGERS = ("points", "limit")
RULE_KEYS = ("points", "limit", "window", "proof")


class Layers:
    """Builds the tree; `tables` and `keys` come from the model (`keys.tables`)."""

    def __init__(self, tables: Iterable[Table], rules: Mapping[str, Any]) -> None:
        self.tables: set[str] = set()
        self.keys: dict[str, Key] = {}
        for table in tables:
            self.tables.add(table.name)
            self.keys.update((k.name, k) for k in table.keys)
        self.tree: dict[str, Any] = {RULES: dict(rules)}
        self.base_dir = Path.cwd()

    @property
    def aliases(self) -> dict[str, str]:
        return {k.alias: k.name for k in self.keys.values() if k.alias}

    def file(self, path: Path) -> None:
        self.merge(self.tree, read_toml(path, CONFIG_VARIABLE), "")
        self.base_dir = path.resolve().parent

    def merge(self, node: dict[str, Any], layer: Mapping[str, Any], prefix: str) -> None:
        for key, value in layer.items():
            name = f"{prefix}{key}"
            if name in self.tables or name == RULES:
                if not isinstance(value, Mapping):
                    raise SettingsError(f"{name}: expected a table")
                if name == RULES:
                    node[RULES].update(value)  # a layer adds new rules or replaces one whole
                else:
                    self.merge(node.setdefault(key, {}), value, f"{name}.")
            elif name in self.keys:
                node[key] = value
            else:
                raise SettingsError(f"{name}: unknown setting")

    def environment(self, env: Mapping[str, str]) -> None:
        aliases = self.aliases
        for var, value in env.items():
            if not var.startswith(PREFIX) or var == CONFIG_VARIABLE:
                continue
            dotted = aliases.get(var)
            if dotted is None and "__" in var:  # SCOREBOARD_EVENTS__NATS__URL
                dotted = var[len(PREFIX):].lower().replace("__", ".")
            if dotted is not None:
                self.set(dotted, value)

    def set(self, dotted: str, raw: Any) -> None:
        parts = dotted.split(".")
        key = self.keys.get(dotted)
        if key is not None:
            value = convert(key.type, raw)
        elif len(parts) == 3 and parts[0] == RULES and parts[2] in RULE_KEYS:
            integer = parts[2] in RULE_INTEGERS and isinstance(raw, str)
            value = int(raw) if integer and raw.strip().isdigit() else raw
        else:
            raise SettingsError(f"{dotted}: unknown setting")
        node = self.tree
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise SettingsError(f"{dotted}: unknown setting")
        node[parts[-1]] = value


def read_toml(path: Path, what: str) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise SettingsError(f"{what}: file {str(path)!r} not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{what}: {path} is not valid TOML: {exc}") from None


TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")


def convert(t: mi.Type, value: Any) -> Any:
    """A string from a variable or flag as the key's type; left as it is when it is not
    one, so that decoding refuses it with the key's expectation."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    try:
        if isinstance(t, mi.BoolType):
            if text.lower() in TRUE + FALSE:
                return text.lower() in TRUE
        elif isinstance(t, mi.IntType):
            return int(text)
        elif isinstance(t, mi.FloatType):
            return float(text)
        elif isinstance(t, LISTS):
            return [part.strip() for part in text.split(",") if part.strip()]
    except ValueError:
        pass
    return value
