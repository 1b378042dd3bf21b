"""The settings: one frozen object of sections, each key declared once in its section's
Struct (type, default, bounds, description). Loaded from the Struct defaults and the
packaged action rules (`rules.toml`), then the file named by SCOREBOARD_CONFIG (or
--config), then SCOREBOARD_* variables, then command-line overrides; every bad value stops
start-up with a message naming its key."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import msgspec
from msgspec import inspect as mi
from msgspec.structs import force_setattr, replace

from scoreboard.core.rules import AbuseLimits, RuleError, RuleSet
from scoreboard.settings.auth import AuthSettings, ProofSettings, PublicKey
from scoreboard.settings.cluster import ClusterSettings
from scoreboard.settings.edge import CorsSettings, EdgeSettings
from scoreboard.settings.events import EventSettings
from scoreboard.settings.keys import Key, expectation, tables
from scoreboard.settings.layers import RULES, Layers
from scoreboard.settings.live import LiveSettings
from scoreboard.settings.section import Section, SettingsError, key
from scoreboard.settings.server import LimitSettings, ServerSettings, WriterSettings

__all__ = [
    "AuthSettings", "CorsSettings", "EdgeSettings", "LeaderboardSettings", "LiveSettings",
    "ProofSettings", "PublicKey", "Settings", "SettingsError", "load_settings",
]

# Read from the installed package, so a wheel starts from any folder.
RULES_FILE = resources.files("scoreboard.settings") / "rules.toml"


class LeaderboardSettings(Section, frozen=True):
    public: Annotated[bool, key("Anyone may read the boards; false: a token is needed.")] = True
    boards: Annotated[tuple[str, ...], key("The boards; global is always one of them.")] = (
        "global",)
    default_limit: Annotated[int, key("Entries of a top list when none is asked for.",
                                      ge=1, le=100)] = 10
    max_limit: Annotated[int, key("The longest top list one may ask for.", ge=1, le=100)] = 100
    max_radius: Annotated[int, key("The most neighbours above and below a player's rank.",
                                   ge=0, le=100)] = 50

    def __post_init__(self) -> None:
        if "global" not in self.boards:
            force_setattr(self, "boards", ("global", *self.boards))


class AbuseSettings(Section, frozen=True):
    """A user whose accepted actions in one minute pass a threshold is flagged with the
    reason (GET /api/v1/admin/flags)."""

    actions_per_minute: Annotated[int, key("Accepted actions per user per minute "
                                           "(0: off).", ge=0, le=10_000_000)] = 120
    points_per_minute: Annotated[int, key("Points per user per minute (0: off).",
                                          ge=0, le=2**53 - 1)] = 3000
    auto_freeze: Annotated[bool, key("Also freeze a flagged user (an administrator can "
                                     "unfreeze and clear the flag).")] = False

    def limits(self) -> AbuseLimits:
        return AbuseLimits(self.actions_per_minute, self.points_per_minute, self.auto_freeze)


def _section(cls: type[Section]) -> Any:
    return msgspec.field(default_factory=cls)


class Settings(Section, frozen=True, kw_only=True):
    """Everything the service reads at start-up; passed explicitly, never global."""

    server: ServerSettings = _section(ServerSettings)
    edge: EdgeSettings = _section(EdgeSettings)
    leaderboard: LeaderboardSettings = _section(LeaderboardSettings)
    auth: AuthSettings = _section(AuthSettings)
    cors: CorsSettings = _section(CorsSettings)
    proofs: ProofSettings = _section(ProofSettings)
    writer: WriterSettings = _section(WriterSettings)
    limits: LimitSettings = _section(LimitSettings)
    live: LiveSettings = _section(LiveSettings)
    cluster: ClusterSettings = _section(ClusterSettings)
    abuse: AbuseSettings = _section(AbuseSettings)
    events: EventSettings = _section(EventSettings)
    rules: RuleSet  # [rules.NAME] tables, checked by the core (`RuleSet.from_config`)


TABLES = list(tables(Settings))


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    config_file: str | Path | None = None,
) -> Settings:
    """Build the settings. `overrides` maps dotted keys to values (flags, tests)."""
    env = os.environ if environ is None else environ
    shipped = tomllib.loads(RULES_FILE.read_text(encoding="utf-8"))[RULES]  # fresh: layers edit it
    layers = Layers(TABLES, shipped)
    layer_path = config_file or env.get("SCOREBOARD_CONFIG")
    if layer_path:
        layers.file(Path(layer_path))
    layers.environment(env)
    for dotted, value in (overrides or {}).items():
        layers.set(dotted, value)
    try:
        settings = msgspec.convert(layers.tree, Settings, strict=True, dec_hook=_decode)
    except msgspec.ValidationError as exc:
        raise SettingsError(explain(str(exc), layers.tree, layers.keys)) from None
    return _read_key_files(settings, layers.base_dir)


def _decode(cls: type, value: Any) -> Any:
    """The two types msgspec does not know: a folder, and the action rules."""
    if cls is Path:
        if not isinstance(value, str) or not value:
            raise ValueError("expected a non-empty path")
        return Path(value).expanduser()
    if cls is RuleSet:
        if not isinstance(value, Mapping):
            raise ValueError("rules: expected tables of action rules")
        try:
            return RuleSet.from_config(value)
        except RuleError as exc:
            raise ValueError(str(exc)) from None
    raise NotImplementedError(cls)


AT = re.compile(r"^(?P<what>.*) - at `\$(?P<path>[^`]*)`$", re.S)
OWN = re.compile(r"^[a-z_][\w.\[\]]*: ")  # already names its key ("server.role: …")
INDEX = re.compile(r"\[(\d+)\]")


def explain(message: str, tree: Mapping[str, Any], keys: Mapping[str, Key]) -> str:
    """A decoding error as `key: expected …, got …`, from the key's declaration."""
    m = AT.match(message)
    if m is None:
        return message
    what, dotted = m["what"], m["path"].lstrip(".")
    if OWN.match(what):
        return what
    declared = keys.get(INDEX.sub("", dotted))
    if declared is not None:
        t, expected = declared.type, declared.expected
        if dotted != declared.name:  # an item of a list
            t, expected = getattr(t, "item_type", t), None
        if not isinstance(t, mi.StructType):  # a table's own words say more: unknown field…
            return f"{dotted}: expected {expectation(t, expected)}, got {_at(tree, dotted)!r}"
    return f"{dotted}: {what[:1].lower()}{what[1:]}"


def _at(tree: Any, dotted: str) -> Any:
    node = tree
    for part in re.split(r"\.|(?=\[)", dotted):
        index = INDEX.fullmatch(part)
        try:
            node = node[int(index[1])] if index else node[part]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def _read_key_files(settings: Settings, base_dir: Path) -> Settings:
    """Public keys given by `path` (relative to the config file) read once, here."""
    sections: dict[str, Any] = {}
    for name in ("auth", "proofs"):
        section = getattr(settings, name)
        keys = []
        for i, k in enumerate(section.public_keys):
            pem = k.pem
            if not pem and k.path:
                path = (base_dir / k.path).expanduser()
                try:
                    pem = path.read_text()
                except OSError as exc:
                    raise SettingsError(f"{name}.public_keys[{i}].path: cannot read "
                                        f"{path}: {exc}") from None
            if "BEGIN" not in pem:
                raise SettingsError(f"{name}.public_keys[{i}]: expected a PEM public key "
                                    "in pem or path")
            keys.append(replace(k, pem=pem))
        sections[name] = replace(section, public_keys=tuple(keys))
    return replace(settings, **sections)
