"""The JavaScript SDK (`clients/js`) against a real server: its `node --test` suite runs
with the server's URLs in its environment, and `npm pack` gives a package that installs
offline and imports from Node.

The server runs in this process on fixed, OS-chosen ports, beside a small control
server the Node tests call to mint tokens and to restart the service on the same ports
and data (a restart is what a live subscription must survive).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from tests.integration.conftest import Running, ServerFactory
from tests.integration.sdk_js import SDK_DIR, require

pytestmark = pytest.mark.slow
NODE_LIMIT = 300.0  # seconds for the whole node suite
STEP_LIMIT = 120


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'db' / 'scoreboard.db'}"  # one backend is enough here


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Control:
    """`GET /token?sub=&name=` mints a user token; `POST /restart` restarts the service."""

    def __init__(self, start_server: ServerFactory, overrides: dict[str, object]) -> None:
        self.start_server = start_server
        self.overrides = overrides
        self.current: Running | None = None

    async def start(self) -> Running:
        self.current = await self.start_server(**self.overrides)
        return self.current

    async def token(self, request: web.Request) -> web.Response:
        assert self.current is not None
        sub = request.query["sub"]
        return web.Response(text=self.current.token(sub, request.query.get("name", sub.title())))

    async def restart(self, request: web.Request) -> web.Response:
        assert self.current is not None
        await self.current.stop()
        await self.start()
        return web.Response(text="restarted")


@pytest.fixture
async def control(start_server: ServerFactory) -> AsyncIterator[tuple[Control, str]]:
    overrides: dict[str, object] = {
        "server.http_port": free_port(),
        "server.ws_port": free_port(),
        # a quota short enough to wait out: one login bonus per 2 s
        "rules.DAILY_LOGIN_BONUS.window": "2s",
    }
    control = Control(start_server, overrides)
    await control.start()
    app = web.Application()
    app.router.add_get("/token", control.token)
    app.router.add_post("/restart", control.restart)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield control, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_the_node_suite_passes_against_a_real_server(
    control: tuple[Control, str],
) -> None:
    node = require("node")
    ctl, control_url = control
    assert ctl.current is not None
    env = {
        **os.environ,
        "SCOREBOARD_URL": ctl.current.url,
        "SCOREBOARD_WS_URL": f"ws://127.0.0.1:{ctl.current.service.ws_port}",
        "SCOREBOARD_CONTROL_URL": control_url,
    }
    # One test file at a time: one of them restarts the server.
    proc = await asyncio.create_subprocess_exec(
        node, "--experimental-websocket", "--test", "--test-concurrency=1",
        "--test-reporter=spec", cwd=SDK_DIR, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with asyncio.timeout(NODE_LIMIT):
            out, _ = await proc.communicate()
    except TimeoutError:
        proc.kill()
        out, _ = await proc.communicate()
        pytest.fail(f"node --test did not finish in {NODE_LIMIT} s:\n{out.decode()}")
    text = out.decode()
    assert proc.returncode == 0, f"node --test failed:\n{text}"
    passed = re.search(r"^\u2139 pass (\d+)$", text, re.MULTILINE)
    assert passed and int(passed[1]) > 0 and re.search(r"^\u2139 fail 0$", text, re.MULTILINE), text


def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=STEP_LIMIT, check=False)
    assert done.returncode == 0, f"{argv} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_npm_pack_installs_offline_and_imports(tmp_path: Path) -> None:
    npm = require("npm")
    node = require("node")
    env = {**os.environ, "npm_config_cache": str(tmp_path / "npm-cache"),
           "npm_config_update_notifier": "false", "npm_config_fund": "false",
           "npm_config_audit": "false"}
    packed = json.loads(_run([npm, "pack", "--json", "--pack-destination", str(tmp_path)],
                             SDK_DIR, env))
    files = {f["path"] for f in packed[0]["files"]}
    assert {"package.json", "README.md", "src/index.js", "src/index.d.ts"} <= files, files
    assert not any(f.startswith("test/") for f in files), files  # tests stay out
    tarball = tmp_path / packed[0]["filename"]

    app = tmp_path / "app"
    app.mkdir()
    (app / "package.json").write_text('{"name": "app", "private": true, "type": "module"}')
    _run([npm, "install", "--offline", "--no-audit", "--no-fund", str(tarball)], app, env)
    out = _run([node, "--input-type=module", "-e", """
import { Scoreboard, ScoreboardError, backoffDelay } from "@scoreboard/client";
import pkg from "@scoreboard/client/package.json" with { type: "json" };
const client = new Scoreboard({ baseUrl: "http://127.0.0.1:9" });
const err = new ScoreboardError("x", { status: 429, code: "RATE_LIMITED" });
console.log(JSON.stringify({ name: pkg.name, ws: client.wsUrl,
  typed: err instanceof Error && err.code, delay: typeof backoffDelay(1) }));
"""], app, env)
    seen = json.loads(out)
    assert seen == {"name": "@scoreboard/client",
                    "ws": "ws://127.0.0.1:8081/api/v1/leaderboard/live",
                    "typed": "RATE_LIMITED", "delay": "number"}, seen
    installed = app / "node_modules" / "@scoreboard" / "client"
    assert (installed / "src" / "index.d.ts").is_file()
