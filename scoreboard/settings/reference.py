"""The configuration reference, generated from the settings model:
`python -m scoreboard.settings.reference > docs/configuration.md`."""

from __future__ import annotations

import tomllib
from typing import Any

import msgspec
from msgspec import inspect as mi

from scoreboard.settings.keys import LISTS, Key, Table, expectation, number, tables
from scoreboard.settings.layers import CONFIG_VARIABLE, FALSE, RULES, TRUE
from scoreboard.settings.model import RULES_FILE, Settings

COMMAND = "python -m scoreboard.settings.reference > docs/configuration.md"

INTRO = f"""\
# Configuration reference

<!-- Generated from the settings model by `{COMMAND}`; do not edit by hand. -->

Every setting has a default (below). They are layered, each over the one before:

1. the defaults, and the action rules shipped in `scoreboard/settings/rules.toml`;
2. the TOML file named by `{CONFIG_VARIABLE}` or `--config` (only the keys you change;
   an unknown key stops start-up; `[rules.NAME]` tables add a rule or replace one whole);
3. environment variables: `SCOREBOARD_<SECTION>__<KEY>` for every key (a nested table adds
   a level: `SCOREBOARD_EVENTS__NATS__URL`), and the short names listed below;
4. command-line flags: `--host`, `--http-port`, `--ws-port`, `--data-dir`,
   `--database-url`, `--role`, and `--set SECTION.KEY=VALUE` for any key.

In variables and flags a list is comma-separated, and a boolean is one of
{", ".join(f"`{w}`" for w in TRUE)} or {", ".join(f"`{w}`" for w in FALSE)}.
A bad value stops start-up with a message naming the key, for example
`server.http_port: expected an integer from 0 to 65535, got 'eighty'`.
"""


def type_name(t: mi.Type) -> str:
    if isinstance(t, LISTS):
        item = t.item_type.type if isinstance(t.item_type, mi.Metadata) else t.item_type
        return "list of tables" if isinstance(item, mi.StructType) else "list of strings"
    names = {mi.BoolType: "boolean", mi.IntType: "integer", mi.FloatType: "number",
             mi.StrType: "string", mi.LiteralType: "string", mi.CustomType: "path"}
    return names.get(type(t), "value")


def bounds(k: Key) -> str:
    t = k.type
    item = t.item_type if isinstance(t, LISTS) else t
    plain = isinstance(item, mi.StrType | mi.StructType) and not getattr(item, "pattern", None)
    if k.expected is None and (plain or isinstance(t, mi.BoolType | mi.CustomType)):
        return "non-empty" if getattr(t, "min_length", None) else ""
    if isinstance(t, mi.IntType | mi.FloatType) and t.ge is not None and t.le is not None:
        return f"{number(t.ge)} to {number(t.le)}"
    return expectation(t, k.expected)


def default(value: Any) -> str:
    return msgspec.json.encode(msgspec.to_builtins(value, enc_hook=str)).decode()


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table(t: Table) -> list[str]:
    lines = [f"## `[{t.name}]`", ""]
    if t.doc:
        lines += [" ".join(t.doc.split()), ""]
    lines += ["| key | type | default | allowed | variables | description |",
              "| --- | --- | --- | --- | --- | --- |"]
    for k in t.keys:
        variables = "<br>".join(f"`{v}`" for v in k.variables)
        if type_name(k.type) == "list of tables":
            variables = "(a TOML file only)"
        lines.append(f"| `{k.name.rsplit('.', 1)[-1]}` | {type_name(k.type)} | "
                     f"`{cell(default(k.default))}` | {cell(bounds(k))} | {variables} | "
                     f"{cell(k.doc)} |")
    return [*lines, ""]


def rules() -> list[str]:
    shipped = tomllib.loads(RULES_FILE.read_text(encoding="utf-8"))[RULES]
    lines = ["## `[rules.NAME]`", "",
             "Action rules: points come only from here. `NAME` is UPPER_SNAKE_CASE; `points` "
             "(1 or more) is required; `limit` actions per rolling `window` (e.g. `\"1h\"`, "
             "`\"24h\"`) per user is an optional quota; `proof = \"required\"` accepts the "
             "action only with a signed action proof. The rules shipped:", "",
             "| rule | points | limit | window | proof |", "| --- | --- | --- | --- | --- |"]
    for name, spec in shipped.items():
        lines.append(f"| `{name}` | {spec['points']} | {spec.get('limit', '')} | "
                     f"{spec.get('window', '')} | {spec.get('proof', 'none')} |")
    return [*lines, ""]


def reference() -> str:
    lines = [INTRO]
    for t in tables(Settings):
        lines += table(t)
    lines += rules()
    return "\n".join(lines).rstrip("\n") + "\n"


if __name__ == "__main__":
    print(reference(), end="")
