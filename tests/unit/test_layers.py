"""The package's shape, checked from its source: folders in one order with imports
running one way (counting imports under TYPE_CHECKING and inside functions), no import
cycle between modules, the core free of the web, I/O and the clock, storage and the
writer free of web frameworks, few loose modules, and modules of one concept."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "scoreboard"
MAX_LINES = 600
MAX_LOOSE_MODULES = 5
# Each folder (or loose module) of the package, lowest first: a folder may import only
# from folders before it. Settings build the rules the core defines; the runtime
# helpers (tasks, logs, metrics, retry) sit below everything.
LAYERS = [
    "scoreboard",  # the package itself: its version
    "scoreboard.runtime",
    "scoreboard.client",
    "scoreboard.core",
    "scoreboard.settings",
    "scoreboard.storage",
    "scoreboard.writer",
    "scoreboard.auth",
    "scoreboard.read",
    "scoreboard.live",
    "scoreboard.cluster",
    "scoreboard.events",
    "scoreboard.edge",
    "scoreboard.http",
    "scoreboard.graphql",
    "scoreboard.ws",
    "scoreboard.demo",
    "scoreboard.app",
    "scoreboard.cli",
    "scoreboard.__main__",
]
WEB = {"aiohttp", "websockets"}
IO_AND_CLOCK = WEB | {"asyncio", "asyncpg", "aiosqlite", "socket", "time", "datetime",
                      "os", "pathlib", "sqlite3", "scoreboard.storage"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(name: str) -> Iterator[str]:
    """Every module `name` imports, wherever the import statement stands."""
    path = MODULES[name]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            for alias in node.names:  # `from scoreboard.http import errors`
                if f"{base}.{alias.name}" in MODULES:
                    yield f"{base}.{alias.name}"


def internal_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name in MODULES:
        targets = set()
        for target in imports(name):
            # importing a.b.c also runs a and a.b
            parts = target.split(".")
            for i in range(1, len(parts) + 1):
                prefix = ".".join(parts[:i])
                if prefix in MODULES and prefix != name and not name.startswith(prefix + "."):
                    targets.add(prefix)
        graph[name] = targets
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_package_has_no_import_cycle() -> None:
    cycle = find_cycle(internal_graph())
    assert cycle is None, " → ".join(cycle or [])


def test_the_cycle_finder_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def folder_of(name: str) -> str:
    """`scoreboard.http.public` → `scoreboard.http`; a loose module is its own folder."""
    return ".".join(name.split(".")[:2])


def folder_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, targets in internal_graph().items():
        here = folder_of(name)
        graph.setdefault(here, set()).update(
            folder_of(t) for t in targets if folder_of(t) != here)
    return graph


def test_every_folder_has_a_place_in_the_layers() -> None:
    assert sorted(folder_graph()) == sorted(LAYERS)


def test_folders_import_only_the_layers_below_them() -> None:
    rank = {folder: i for i, folder in enumerate(LAYERS)}
    upward = sorted(f"{source} → {target}" for source, targets in folder_graph().items()
                    for target in targets if rank[target] >= rank[source])
    assert upward == [], "imports against the layer order:\n" + "\n".join(upward)


def test_no_cycle_between_folders() -> None:
    cycle = find_cycle(folder_graph())
    assert cycle is None, " → ".join(cycle or [])


def test_the_root_holds_few_loose_modules() -> None:
    loose = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(loose) <= MAX_LOOSE_MODULES, loose


def test_nothing_imports_the_wiring_back() -> None:
    graph = internal_graph()
    users = sorted(n for n, targets in graph.items()
                   if "scoreboard.app" in targets and n != "scoreboard.cli")
    assert users == []


def _roots(name: str) -> set[str]:
    found = set()
    for target in imports(name):
        found.add(target.split(".")[0])
        found.add(".".join(target.split(".")[:2]))
    return found


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith("scoreboard.core")))
def test_the_core_does_no_io_and_reads_no_clock(name: str) -> None:
    allowed = CALENDAR if name == "scoreboard.core.periods" else set()
    assert not _roots(name) & IO_AND_CLOCK - allowed, name


# Periods need calendar arithmetic (local midnights, ISO weeks, time zones), so that one
# module may import datetime, as long as it never asks it what time it is.
CALENDAR = {"datetime"}


def test_the_calendar_of_periods_reads_no_clock() -> None:
    import scoreboard.core.periods as periods

    source = Path(periods.__file__).read_text()
    for clock in (".now(", ".today(", ".utcnow(", "time.time", "monotonic"):
        assert clock not in source, clock


@pytest.mark.parametrize("name", sorted(
    n for n in MODULES if n.startswith("scoreboard.storage") or n == "scoreboard.writer.actor"
))
def test_storage_and_the_writer_know_no_web_framework(name: str) -> None:
    assert not _roots(name) & WEB, name


def test_the_core_speaks_no_http() -> None:
    for name in MODULES:
        if name.startswith("scoreboard.core"):
            tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
            stored = {node.id for node in ast.walk(tree)
                      if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store)}
            assert "status" not in stored, name


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_stay_small(name: str) -> None:
    lines = len(MODULES[name].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines"


def _engine_attributes(name: str, source: str | None = None) -> list[str]:
    """Every attribute `name` (or `source`) reads of an engine: of `engine`,
    `self.engine`, `self._engine`, `self.views.engine` and the like."""
    def is_engine(node: ast.expr) -> bool:
        if isinstance(node, ast.Name):
            return node.id.lstrip("_") == "engine"
        return isinstance(node, ast.Attribute) and node.attr.lstrip("_") == "engine"

    text = MODULES[name].read_text(encoding="utf-8") if source is None else source
    return [node.attr for node in ast.walk(ast.parse(text))
            if isinstance(node, ast.Attribute) and is_engine(node.value)]


# What the writer may use of the engine: decide, commit, apply, answer. Replies are the
# engine's `result`, never built from its rankings or user sets.
WRITER_USES_OF_ENGINE = {"decide", "new_pending", "batch", "apply", "apply_group", "remember",
                         "remember_proof", "expire", "results", "last_seq", "last_at",
                         "roll", "next_rollover", "settle"}


def test_the_writer_uses_only_the_engines_public_interface() -> None:
    from scoreboard.core.engine import Engine

    used = set(_engine_attributes("scoreboard.writer.actor"))
    assert used <= WRITER_USES_OF_ENGINE, sorted(used - WRITER_USES_OF_ENGINE)
    assert "results" in used  # the check sees what the writer reads
    methods = {n for n in WRITER_USES_OF_ENGINE if callable(getattr(Engine, n, None))}
    assert methods == WRITER_USES_OF_ENGINE - {"last_seq", "last_at"}


@pytest.mark.parametrize("name", sorted(n for n in MODULES if not n.startswith("scoreboard.core")))
def test_nothing_outside_the_core_reads_private_engine_state(name: str) -> None:
    private = [a for a in _engine_attributes(name) if a.startswith("_")]
    assert private == [], f"{name} reads {private}"


# What the rest of the package may ask the engine, beyond what the writer uses: its read
# methods (`scoreboard/core/queries.py`) and, for the archiver, the closed periods it takes.
# The log position (`last_seq`, `last_at`) is the one piece of state read directly.
ENGINE_READ_API = {"ranking", "board_sizes", "definition", "definitions", "season_ended",
                   "current_period", "display_name", "chosen_name", "is_frozen", "flagged",
                   "hidden_users", "revocations", "state_digest", "take_closed"}
ENGINE_POSITION = {"last_seq", "last_at"}


def _outside_the_core_may_use(attribute: str) -> bool:
    return attribute in ENGINE_READ_API | WRITER_USES_OF_ENGINE


def test_the_engines_read_api_is_methods() -> None:
    from scoreboard.core.engine import Engine

    not_methods = {n for n in ENGINE_READ_API | WRITER_USES_OF_ENGINE
                   if not callable(getattr(Engine, n, None))
                   and not isinstance(getattr(Engine, n, None), property)}
    assert not_methods == ENGINE_POSITION


@pytest.mark.parametrize("name", sorted(n for n in MODULES if not n.startswith("scoreboard.core")))
def test_nothing_outside_the_core_reads_engine_state(name: str) -> None:
    """Outside the core, the engine is asked through its methods, never read: its sets
    and dicts are its own to change."""
    read = sorted({a for a in _engine_attributes(name) if not _outside_the_core_may_use(a)})
    assert read == [], f"{name} reads the engine's {read}: add a read method in core/queries.py"


def test_the_state_check_sees_a_data_attribute() -> None:
    source = "def f(self):\n    return u in self.engine.frozen or self.engine.is_frozen(u)\n"
    used = _engine_attributes("scoreboard.http.admin", source)
    assert sorted(used) == ["frozen", "is_frozen"]
    assert [a for a in used if not _outside_the_core_may_use(a)] == ["frozen"]
