"""Every start, a restart included, pays for what the service imports: the libraries of
optional parts (GraphQL's Strawberry, NATS) are imported only when configured."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.slow  # a process of its own: a clean set of imported modules
def test_the_service_imports_graphql_and_nats_only_when_it_uses_them() -> None:
    code = ("import sys, scoreboard.cli, scoreboard.app; "
            "print(sorted(m for m in ('strawberry', 'nats') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
