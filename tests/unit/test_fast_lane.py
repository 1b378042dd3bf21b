"""The fast lane (`pytest -m "not slow and not browser"`) stays fast: every test that
starts a process (the service, a wheel or container build, NATS, a cluster node) or
drives a browser carries the `slow` or `browser` mark, on the file (`pytestmark`) or
on the test itself. Found from the source: a module-level function that starts one,
directly or through another such function or a fixture of the module, makes every
test that uses it need the mark."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
LANE_MARKS = {"slow", "browser"}
# What starts a process or a browser (attribute or function names).
STARTERS = {
    "create_subprocess_exec", "create_subprocess_shell", "Popen", "check_call",
    "check_output", "chromium", "launch",
}
SUBPROCESS_RUN = ("subprocess", "run")


def starts_something(node: ast.AST) -> bool:
    for n in ast.walk(node):
        if isinstance(n, ast.Attribute) and n.attr in STARTERS:
            return True
        if isinstance(n, ast.Name) and n.id in STARTERS:
            return True
        if (isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
                and (n.value.id, n.attr) == SUBPROCESS_RUN):
            return True
    return False


def names_used(node: ast.AST) -> set[str]:
    used = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        used |= {a.arg for a in node.args.args + node.args.kwonlyargs}  # fixtures
    return used


def marks(decorators: list[ast.expr]) -> set[str]:
    """`pytest.mark.NAME` (called or not) among decorators or a pytestmark value."""
    out = set()
    for d in decorators:
        for n in ast.walk(d):
            if (isinstance(n, ast.Attribute) and isinstance(n.value, ast.Attribute)
                    and n.value.attr == "mark"):
                out.add(n.attr)
    return out


def unmarked_starters(source: str) -> list[str]:
    """Tests of a module that start a process or a browser without a lane mark."""
    tree = ast.parse(source)
    file_marks: set[str] = set()
    defs: dict[str, ast.AST] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets
        ):
            file_marks |= marks([node.value])
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            defs[node.name] = node
    if file_marks & LANE_MARKS:
        return []
    starters = {name for name, node in defs.items() if starts_something(node)}
    grew = True
    while grew:  # whatever uses a starter starts something too
        more = {name for name, node in defs.items()
                if name not in starters and names_used(node) & starters}
        starters |= more
        grew = bool(more)
    return sorted(
        name for name, node in defs.items()
        if name.startswith("test") and name in starters
        and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and not marks(node.decorator_list) & LANE_MARKS
    )


TEST_FILES = sorted(TESTS.rglob("test_*.py"))


@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: str(p.relative_to(TESTS)))
def test_tests_that_start_processes_or_browsers_are_off_the_fast_lane(path: Path) -> None:
    missing = unmarked_starters(path.read_text(encoding="utf-8"))
    assert not missing, (
        f"{path.relative_to(TESTS)}: {', '.join(missing)} start a process or a browser; "
        f"mark them @pytest.mark.slow (or browser), or the whole file with pytestmark"
    )


@pytest.mark.parametrize(("source", "expected"), [
    # a helper that spawns, used by an unmarked test: caught
    ("import asyncio\nasync def spawn():\n    await asyncio.create_subprocess_exec('x')\n"
     "async def test_a():\n    await spawn()\n", ["test_a"]),
    # through a fixture argument and a second helper
    ("import subprocess\ndef build():\n    subprocess.run(['x'])\n"
     "def wheel():\n    return build()\ndef test_b(wheel):\n    pass\n", ["test_b"]),
    # marked on the test, or on the file: fine
    ("import pytest, subprocess\n@pytest.mark.slow\ndef test_c():\n    subprocess.run([])\n",
     []),
    ("import pytest, subprocess\npytestmark = [pytest.mark.browser]\n"
     "def test_d():\n    subprocess.Popen([])\n", []),
    # another mark does not count
    ("import pytest, subprocess\npytestmark = pytest.mark.postgres\n"
     "def test_e():\n    subprocess.Popen([])\n", ["test_e"]),
    # a test that starts nothing needs no mark
    ("def test_f():\n    assert 1 + 1 == 2\n", []),
])
def test_the_check_finds_what_it_should(source: str, expected: list[str]) -> None:
    assert unmarked_starters(source) == expected
