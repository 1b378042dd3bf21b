"""What every settings section is built from: a frozen msgspec Struct whose fields carry
their type, default, bounds and one-line description, and the error that names a key."""

from __future__ import annotations

from typing import Any

import msgspec


class SettingsError(ValueError):
    """A setting is missing, unknown or malformed; the message names the key."""


class Section(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One TOML table of the settings. Fields are `Annotated[type, key(...)] = default`."""


def key(doc: str, *, ge: float | None = None, le: float | None = None,
        pattern: str | None = None, min_length: int | None = None,
        expected: str | None = None, env: str | None = None) -> msgspec.Meta:
    """A setting's bounds and description. `expected` says in words what a pattern means
    (errors and the reference use it); `env` names a short variable besides
    SCOREBOARD_<SECTION>__<KEY>."""
    extra = {"expected": expected, "env": env}
    bounds = {"ge": ge, "le": le, "pattern": pattern, "min_length": min_length}
    given: dict[str, Any] = {k: v for k, v in bounds.items() if v is not None}
    return msgspec.Meta(description=doc, **given,
                        extra={k: v for k, v in extra.items() if v is not None} or None)


def refuse(name: str, message: str) -> None:
    """Stop decoding with a message naming `name` (raised from `__post_init__`)."""
    raise ValueError(f"{name}: {message}")

