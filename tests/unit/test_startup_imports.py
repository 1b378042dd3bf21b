"""Every start, a restart included, pays for what the service imports: the libraries of
optional parts (GraphQL's Strawberry, NATS) are imported only when configured."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow  # a process of its own: a clean set of imported modules
def test_the_service_imports_graphql_and_nats_only_when_it_uses_them() -> None:
    code = ("import sys, scoreboard.cli, scoreboard.app; "
            "print(sorted(m for m in ('strawberry', 'nats') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.slow  # a process of its own: a clean set of imported modules
def test_a_sqlite_service_is_built_without_graphql_postgres_or_the_cluster(
        tmp_path: Path) -> None:
    # GraphQL is on by default: its endpoint is built once the service listens.
    code = ("import sys; from scoreboard.app import Service; "
            "from scoreboard.settings.model import load_settings; "
            f"s = load_settings({{'server.data_dir': {str(tmp_path)!r}}}); "
            "service = Service.build(s); assert service.graphql is not None; "
            "print(sorted(m for m in ('strawberry', 'graphql', 'asyncpg', "
            "'scoreboard.cluster.node', 'websockets.asyncio.client') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
