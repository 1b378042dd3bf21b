"""The Containerfile: build the image, run it, and check /health, its HEALTHCHECK, a token
minted inside the container (same data folder, same secret), one scored action, the
non-root user, and that SIGTERM reaches the service, which exits 0.

Uses podman or docker, whichever answers first (or SCOREBOARD_TEST_ENGINE). Skipped with
the reason when none can run containers; with CI set it fails instead, because CI
installs podman. Settings for the build, from the environment:

- SCOREBOARD_TEST_BASE_IMAGE: the BASE_IMAGE build argument (default python:3.11-slim);
- SCOREBOARD_TEST_BUILD_CA: a CA bundle mounted for the build only (podman), for an
  intercepting HTTPS proxy; it does not end up in the image.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.integration.test_distribution import assert_serving
from tests.integration.test_outage import ServerProcess, free_port

ROOT = Path(__file__).resolve().parents[2]
BUILD_LIMIT = 600  # seconds: a cold build downloads packages
STEP_LIMIT = 60
pytestmark = [pytest.mark.slow, pytest.mark.build]


def _working_engine() -> tuple[str | None, str]:
    """The first engine that can run containers, or None and why not."""
    wanted = os.environ.get("SCOREBOARD_TEST_ENGINE")
    tried = []
    for name in [wanted] if wanted else ["podman", "docker"]:
        path = shutil.which(name)
        if path is None:
            tried.append(f"{name}: not installed")
            continue
        try:
            info = subprocess.run([path, "info"], capture_output=True, text=True,
                                  timeout=STEP_LIMIT, check=False)
        except subprocess.TimeoutExpired:
            tried.append(f"{name}: `{name} info` did not answer")
            continue
        if info.returncode == 0:
            return path, ""
        last = (info.stderr.strip().splitlines() or ["failed"])[-1]
        tried.append(f"{name}: `{name} info` failed ({last})")
    return None, "; ".join(tried)


@pytest.fixture(scope="module")
def image() -> Iterator[tuple[str, str]]:
    engine, why = _working_engine()
    if engine is None:
        message = f"no container engine can run here ({why})"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    tag = f"localhost/scoreboard:test-{uuid.uuid4().hex[:8]}"
    base = os.environ.get("SCOREBOARD_TEST_BASE_IMAGE", "python:3.11-slim")
    argv = [engine, "build", "-t", tag, "--build-arg", f"BASE_IMAGE={base}"]
    if Path(engine).name == "podman":
        argv += ["--format", "docker"]  # keeps the HEALTHCHECK
    ca = os.environ.get("SCOREBOARD_TEST_BUILD_CA")
    if ca:
        argv += ["-v", f"{ca}:/run/host-ca.crt:ro", "--build-arg", "PIP_CERT=/run/host-ca.crt"]
    build = subprocess.run([*argv, str(ROOT)], capture_output=True, text=True,
                           timeout=BUILD_LIMIT, check=False)
    assert build.returncode == 0, f"build failed:\n{build.stdout[-4000:]}\n{build.stderr[-4000:]}"
    try:
        yield engine, tag
    finally:
        subprocess.run([engine, "rmi", "-f", tag], capture_output=True, timeout=STEP_LIMIT,
                       check=False)


async def _run(*argv: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), STEP_LIMIT)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_the_image_serves_scores_and_stops_cleanly_on_sigterm(
    image: tuple[str, str],
) -> None:
    engine, tag = image
    name = f"scoreboard-test-{uuid.uuid4().hex[:8]}"
    volume = f"{name}-data"
    port = free_port()
    code, _, err = await _run(engine, "run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:8080",
                              "-v", f"{volume}:/var/lib/scoreboard", tag)
    assert code == 0, err
    logs = await asyncio.create_subprocess_exec(
        engine, "logs", "-f", name, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    service = ServerProcess(logs, port)
    try:
        async with aiohttp.ClientSession() as http:
            await assert_serving(service, http)
            code, out, err = await _run(engine, "healthcheck", "run", name)
            assert code == 0, f"HEALTHCHECK failed: {out}{err}"

            code, out, _ = await _run(engine, "exec", name, "id", "-u")
            assert code == 0 and out.strip() not in ("", "0"), f"runs as uid {out!r}"

            code, out, err = await _run(engine, "exec", name, "scoreboard", "token",
                                        "--sub", "alice")
            assert code == 0, err
            assert "/var/lib/scoreboard/jwt-secret" in err
            body = {"actionType": "WIN_MATCH", "clientActionId": "container-1"}
            async with http.post(f"{service.url}/api/v1/scores/actions", json=body,
                                 headers={"Authorization": f"Bearer {out.splitlines()[-1]}"}
                                 ) as r:
                answer = await r.json()
                assert r.status == 200, answer
                assert (answer["userId"], answer["newScore"]) == ("alice", 20)

        code, _, err = await _run(engine, "stop", "-t", "30", name)
        assert code == 0, err
        await service.exit_code()  # `logs -f` ends with the container
        code, out, err = await _run(engine, "inspect", name, "--format",
                                    "{{.State.ExitCode}}")
        assert (code, out.strip()) == (0, "0"), f"exit code {out!r} {err}\n{service.stderr}"
        assert "stopped" in service.stderr, service.stderr
    finally:
        if logs.returncode is None:
            logs.kill()
            await logs.wait()
        await _run(engine, "rm", "-f", name)
        await _run(engine, "volume", "rm", "-f", volume)
