"""The built wheel, installed (not editable) into a fresh virtualenv, serves from an empty
folder: the defaults and the page come from inside the package, and the `scoreboard`
script and `python -m scoreboard` are the same command line as run.py.

The wheel is built and installed without network access. Its dependencies are the ones
this test run already has (installed from uv.lock): the fresh environment sees them after
its own site-packages, never the source tree, so what is under test is the wheel itself.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from scoreboard import __version__
from tests.integration.test_outage import ServerProcess, free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.build]
STEP_LIMIT = 180  # seconds any one build or install step may take


@dataclass(frozen=True)
class Installed:
    wheel: Path
    bin: Path
    empty: Path  # a working directory with nothing of the project in it

    def env(self) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items()
                if not k.startswith(("SCOREBOARD_", "PYTHON", "VIRTUAL_ENV"))}
        return {**keep, "PATH": f"{self.bin}{os.pathsep}{keep.get('PATH', '')}"}

    def run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(argv, cwd=self.empty, env=self.env(), capture_output=True,
                              text=True, timeout=STEP_LIMIT, check=False)


def _step(*argv: str | Path, cwd: Path | None = None) -> str:
    done = subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True,
                          timeout=STEP_LIMIT, check=False)
    assert done.returncode == 0, f"{argv} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    base = tmp_path_factory.mktemp("dist")
    src = base / "src"  # a copy, so the build leaves nothing in the work tree
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    # Symlinks kept as they are in the work tree: static/sdk links to clients/js/src, and
    # the wheel must hold the SDK's files themselves.
    shutil.copytree(ROOT / "scoreboard", src / "scoreboard", symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copytree(ROOT / "clients" / "js" / "src", src / "clients" / "js" / "src")
    assert (src / "scoreboard" / "static" / "sdk").is_symlink()
    _step(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
          "--no-index", "--wheel-dir", base / "dist", src)
    (wheel,) = (base / "dist").glob("scoreboard-*.whl")

    venv = base / "venv"
    _step(sys.executable, "-m", "venv", venv)
    _step(venv / "bin" / "python", "-m", "pip", "install", "--no-deps", "--no-index",
          "--disable-pip-version-check", "-q", wheel)
    site = _step(venv / "bin" / "python", "-c",
                 "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip()
    ours = sysconfig.get_paths()
    # Plain path lines: the directories are searched after the venv's own site-packages,
    # and the .pth files inside them (such as an editable install's) are not processed.
    Path(site, "test-dependencies.pth").write_text(f"{ours['purelib']}\n{ours['platlib']}\n")
    empty = base / "empty"
    empty.mkdir()
    return Installed(wheel, venv / "bin", empty)


def test_the_wheel_holds_the_rules_and_the_page(installed: Installed) -> None:
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    for name in ("scoreboard/settings/rules.toml", "scoreboard/__main__.py",
                 "scoreboard/static/index.html", "scoreboard/static/app.js",
                 "scoreboard/static/style.css", "scoreboard/static/sdk/index.js",
                 "scoreboard/static/sdk/subscription.js"):
        assert name in names, f"{name} is missing from {installed.wheel.name}"
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    text = zipfile.ZipFile(installed.wheel).read(entry_points).decode()
    assert "scoreboard = scoreboard.cli:main" in text


def test_script_and_module_answer_help_and_version(installed: Installed) -> None:
    where = installed.run("python", "-c", "import scoreboard; print(scoreboard.__file__)")
    assert where.stdout.startswith(str(installed.bin.parent)), where
    for argv, prog in ((["scoreboard"], "scoreboard"),
                       (["python", "-m", "scoreboard"], "python -m scoreboard")):
        help_ = installed.run(*argv, "--help")
        assert help_.returncode == 0 and f"usage: {prog}" in help_.stdout, help_
        assert all(c in help_.stdout for c in ("serve", "token", "proof", "verify"))
        version = installed.run(*argv, "--version")
        assert (version.returncode, version.stdout) == (0, f"scoreboard {__version__}\n")


async def assert_serving(server: ServerProcess, http: aiohttp.ClientSession) -> None:
    """Wait for the start-up line, then GET /health, which names this version."""
    await server.wait_for_line("Scoreboard serving")
    async with http.get(f"{server.url}/health") as r:
        assert r.status == 200
        assert await r.json() == {"status": "ok", "version": __version__}


async def test_it_serves_the_page_the_api_and_the_document_from_an_empty_folder(
    installed: Installed,
) -> None:
    port = free_port()
    proc = await _spawn(installed, "scoreboard", "serve", "--http-port", str(port),
                        "--ws-port", str(free_port()))
    child = ServerProcess(proc, port)
    try:
        async with aiohttp.ClientSession() as http:
            await assert_serving(child, http)
            async with http.get(f"{child.url}/") as r:
                assert r.status == 200 and "<html" in await r.text()
            for path in ("/static/app.js", "/static/sdk/index.js"):
                async with http.get(f"{child.url}{path}") as r:
                    assert r.status == 200 and "javascript" in r.content_type, path
            async with http.get(f"{child.url}/openapi.json") as r:
                assert r.status == 200
                assert (await r.json())["info"]["version"] == __version__

            # The token command reads the secret the server created in ./data.
            minting = await _spawn(installed, "scoreboard", "token", "--sub", "alice",
                                   stdout=asyncio.subprocess.PIPE)
            out, err = await asyncio.wait_for(minting.communicate(), STEP_LIMIT)
            assert minting.returncode == 0, err
            assert b"token secret:" in err and b"data" in err
            headers = {"Authorization": f"Bearer {out.decode().splitlines()[-1]}"}
            body = {"actionType": "COMPLETE_LEVEL", "clientActionId": "wheel-1"}
            async with http.post(f"{child.url}/api/v1/scores/actions", json=body,
                                 headers=headers) as r:
                answer = await r.json()
                assert r.status == 200, answer
                assert (answer["userId"], answer["newScore"]) == ("alice", 10)
            async with http.get(f"{child.url}/metrics") as r:
                assert f'scoreboard_build_info{{version="{__version__}"}} 1.0' in await r.text()
        assert await child.terminate() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert sorted(p.name for p in installed.empty.iterdir()) == ["data"]


async def _spawn(installed: Installed, *argv: str, stdout: int = asyncio.subprocess.DEVNULL
                 ) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *argv, cwd=installed.empty, env=installed.env(), stdin=asyncio.subprocess.DEVNULL,
        stdout=stdout, stderr=asyncio.subprocess.PIPE,
    )
