"""Shared by the JavaScript SDK's tests: where the SDK is, and Node to run it with."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

SDK_DIR = Path(__file__).resolve().parents[2] / "clients" / "js"


def require(tool: str) -> str:
    """The tool's path; without it the test skips, or fails when `CI` is set."""
    found = shutil.which(tool)
    if found is None:
        reason = f"no `{tool}` on PATH (apt-get install -y nodejs npm)"
        if os.environ.get("CI"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return found
