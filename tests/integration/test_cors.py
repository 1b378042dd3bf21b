"""Browsers on other origins: CORS on HTTP and SSE, and the WebSocket handshake's Origin
check — with aiohttp and websockets clients, then in headless Chromium on a page served
from a second origin."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.integration.conftest import Running, ServerFactory
from tests.integration.test_page import WAIT_MS, browser, page  # noqa: F401

APP = "http://app.example"
ACTIONS = "/api/v1/scores/actions"


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only: CORS lives at the edge."""
    return f"sqlite:///{tmp_path / 'db' / 'scoreboard.db'}"


async def preflight(r: Running, origin: str, path: str = ACTIONS) -> Any:
    async with r.http.options(f"{r.url}{path}", headers={
        "Origin": origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }) as resp:
        await resp.read()
        return resp


async def test_preflight_and_headers_for_an_allowed_origin(start_server: ServerFactory) -> None:
    r = await start_server(**{"cors.allow_origins": [APP], "cors.max_age": 321})
    resp = await preflight(r, APP)
    assert resp.status == 204
    h = resp.headers
    assert h["Access-Control-Allow-Origin"] == APP
    assert "POST" in h["Access-Control-Allow-Methods"]
    for name in ("Authorization", "Content-Type", "If-None-Match", "Last-Event-ID",
                 "X-Request-ID"):
        assert name in h["Access-Control-Allow-Headers"]
    assert h["Access-Control-Max-Age"] == "321"
    assert "Access-Control-Allow-Credentials" not in h
    assert "Origin" in h["Vary"]
    # every API route answers a preflight, path parameters included
    assert (await preflight(r, APP, "/api/v1/admin/users/x/revoke-tokens")).status == 204
    async with r.http.get(f"{r.url}/api/v1/leaderboard", headers={"Origin": APP}) as got:
        assert got.status == 200
        assert got.headers["Access-Control-Allow-Origin"] == APP
        exposed = got.headers["Access-Control-Expose-Headers"]
        for name in ("ETag", "Retry-After", "RateLimit-Limit", "X-Request-ID"):
            assert name in exposed
        assert "Origin" in got.headers["Vary"]
    async with r.http.get(f"{r.url}/api/v1/leaderboard",
                          headers={"Origin": "http://evil.example"}) as other:
        assert "Access-Control-Allow-Origin" not in other.headers
    refused = await preflight(r, "http://evil.example")
    assert refused.status == 403


async def test_without_cors_options_is_a_wrong_method(server: Running) -> None:
    resp = await preflight(server, APP)
    assert resp.status == 405
    assert "Access-Control-Allow-Origin" not in resp.headers


async def test_websocket_origin_check(start_server: ServerFactory) -> None:
    r = await start_server(**{"cors.allow_origins": [APP]})
    url = f"ws://127.0.0.1:{r.service.ws_port}/api/v1/leaderboard/live"
    own_page = f"http://127.0.0.1:{r.service.http_port}"
    for origin in (None, own_page, APP):
        async with connect(url, origin=origin) as ws:  # type: ignore[arg-type]
            assert orjson.loads(await ws.recv())["type"] == "CONNECTION_ACK"
    for origin in ("http://evil.example", f"http://localhost:{r.service.http_port}"):
        with pytest.raises(InvalidStatus) as info:
            async with connect(url, origin=origin):  # type: ignore[arg-type]
                pass
        assert info.value.response.status_code == 403
        body = orjson.loads(info.value.response.body)
        assert body["error"]["code"] == "FORBIDDEN"


# -- a real browser on another origin ----------------------------------------------------

APP_PAGE = """<!doctype html><meta charset="utf-8"><title>app</title><script>
window.run = async (api, ws, token) => {
  const out = {};
  try {
    const r = await fetch(api + "/api/v1/leaderboard?limit=5");
    out.get = r.status + " " + (r.headers.get("ETag") ? "etag" : "no-etag");
  } catch (e) { out.get = "blocked"; }
  try {
    const r = await fetch(api + "/api/v1/scores/actions", {
      method: "POST",
      headers: {"Authorization": "Bearer " + token, "Content-Type": "application/json"},
      body: JSON.stringify({actionType: "COMPLETE_LEVEL", clientActionId: "browser-1"}),
    });
    out.post = r.status + " " + (r.headers.get("X-Request-ID") ? "id" : "no-id");
  } catch (e) { out.post = "blocked"; }
  out.sse = await new Promise((done) => {
    const es = new EventSource(api + "/api/v1/leaderboard/stream?limit=5");
    es.addEventListener("leaderboard", () => { es.close(); done("event"); });
    es.onerror = () => { es.close(); done("blocked"); };
  });
  out.ws = await new Promise((done) => {
    const s = new WebSocket(ws + "/api/v1/leaderboard/live?token=" + token);
    s.onmessage = (m) => { s.close(); done(JSON.parse(m.data).type); };
    s.onerror = () => done("blocked");
  });
  return out;
};
</script>"""


@asynccontextmanager
async def second_origin() -> AsyncIterator[str]:
    """The app's page on another origin: `localhost` and its own port."""
    async def index(request: web.Request) -> web.Response:
        return web.Response(text=APP_PAGE, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", index)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://localhost:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def browse(r: Running, page: Any, origin: str) -> dict[str, str]:  # noqa: F811
    await page.goto(f"{origin}/", timeout=WAIT_MS)
    api = r.url
    ws = f"ws://127.0.0.1:{r.service.ws_port}"
    result: dict[str, str] = await asyncio.wait_for(
        page.evaluate("([a, w, t]) => window.run(a, w, t)", [api, ws, r.token("amy", "Amy")]),
        WAIT_MS / 1000,
    )
    return result


@pytest.mark.browser
async def test_browser_app_on_another_origin_with_cors(
    start_server: ServerFactory, page: Any  # noqa: F811
) -> None:
    async with second_origin() as origin:
        r = await start_server(**{"cors.allow_origins": [origin]})
        result = await browse(r, page, origin)
    assert result == {"get": "200 etag", "post": "200 id", "sse": "event",
                      "ws": "CONNECTION_ACK"}


@pytest.mark.browser
async def test_browser_app_on_another_origin_is_blocked_without_cors(
    start_server: ServerFactory, page: Any  # noqa: F811
) -> None:
    async with second_origin() as origin:
        r = await start_server()
        result = await browse(r, page, origin)
    assert result == {"get": "blocked", "post": "blocked", "sse": "blocked", "ws": "blocked"}
    status, _ = await r.get("/api/v1/users/amy/score")
    assert status == 404  # the preflight failed, so the POST was never sent
