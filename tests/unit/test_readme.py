"""The README's quick start is what CI runs, and every place that pins uv agrees."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEST_COMMAND = ".venv/bin/python -m pytest"


def quick_start() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Quick start", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


def test_quick_start_is_two_commands_one_serving_one_testing() -> None:
    serve, test = quick_start()
    assert serve.startswith("python3 -m venv .venv && ")
    assert serve.endswith(" && .venv/bin/scoreboard")
    assert test.startswith("python3 -m venv .venv && ")
    assert test.endswith(f" && {TEST_COMMAND}")


def test_quick_start_trusts_the_system_certificate_store() -> None:
    """Behind a TLS-intercepting proxy whose CA is only in the system store pip works,
    and uv must read the same store (it ships its own roots by default)."""
    for command in quick_start():
        assert "uv sync -q --system-certs " in command, command


def test_ci_runs_the_readme_set_up_and_test_command() -> None:
    _, test = quick_start()
    set_up = test.removesuffix(f" && {TEST_COMMAND}")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert set_up in ci, f".ci/run does not run the README's set-up line:\n{set_up}"
    assert TEST_COMMAND in ci
    assert ci.index(set_up) < ci.index(TEST_COMMAND)


def test_uv_is_pinned_to_one_version_everywhere() -> None:
    files = ["README.md", ".ci/run", "Containerfile"]
    versions = {
        name: set(re.findall(r"uv(?:==|_VERSION=)(\d+\.\d+\.\d+)",
                             (ROOT / name).read_text(encoding="utf-8"), re.IGNORECASE))
        for name in files
    }
    assert all(versions.values()), versions
    assert len(set().union(*versions.values())) == 1, versions
