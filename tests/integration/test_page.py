"""The live page at `/` in headless Chromium (Debian's, driven by Playwright; nothing is
downloaded). Without Chromium these tests skip, or fail when `CI` is set."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.integration.conftest import Running, ServerFactory
from tests.integration.test_boards_api import call, scores

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("SCOREBOARD_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync",
]
WAIT_MS = 15_000


def _unavailable() -> str | None:
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install playwright)"
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        return f"no Chromium at {CHROMIUM} (apt-get install -y chromium)"
    return None


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    reason = _unavailable()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        chromium = await p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                           args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def page(browser: Any) -> AsyncIterator[Any]:
    context = await browser.new_context()
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield page
    finally:
        await context.close()
    assert not errors, f"the page threw: {errors}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def seed(r: Running, scores: dict[str, int]) -> None:
    """Give each user `points` (multiples of 10) with COMPLETE_LEVEL actions."""
    async def one(user: str, points: int) -> None:
        for _ in range(points // 10):
            status, body = await r.act(user, cid=f"{user}-{os.urandom(6).hex()}")
            assert status == 200, body

    await asyncio.gather(*(one(u, p) for u, p in scores.items()))


async def rows(page: Any) -> list[tuple[str, str, str]]:
    cells: list[tuple[str, str, str]] = await page.eval_on_selector_all(
        "#board li",
        "els => els.map(li => [...li.children].map(c => c.textContent))",
    )
    return [tuple(c) for c in cells]  # type: ignore[misc]


async def open_live(page: Any, r: Running, fragment: str = "") -> None:
    from playwright.async_api import expect

    await page.goto(f"{r.url}/{fragment}")
    status = page.locator("#status")
    await expect(status).to_have_attribute("data-state", "live", timeout=WAIT_MS)


async def test_the_page_shows_the_live_top_10(server: Running, page: Any) -> None:
    from playwright.async_api import expect

    await seed(server, {f"user{i:02d}": 10 * (i + 1) for i in range(12)})
    await open_live(page, server)
    await expect(page.locator("#status")).to_have_attribute("data-transport", "ws")
    await expect(page.locator("#board li")).to_have_count(10, timeout=WAIT_MS)
    _, board = await server.get("/api/v1/leaderboard?limit=10")
    expected = [
        (str(e["rank"]), e["displayName"], f"{e['score']:,}") for e in board["entries"]
    ]
    assert await rows(page) == expected
    assert expected[0][1] == "User11"


async def test_an_action_appears_without_a_reload(server: Running, page: Any) -> None:
    from playwright.async_api import expect

    await seed(server, {"alice": 30, "bob": 20})
    await open_live(page, server)
    await expect(page.locator("#board li")).to_have_count(2, timeout=WAIT_MS)
    # Mark the document and bob's row: both must survive (no reload; rows are moved,
    # not rebuilt, which is what lets the rank change animate).
    await page.evaluate("window.__sameDocument = true")
    await page.eval_on_selector('#board li[data-user-id="bob"]', "li => li.__mark = 42")
    await seed(server, {"bob": 20})  # bob: 40, now first
    first = page.locator("#board li").first
    await expect(first).to_have_attribute("data-user-id", "bob", timeout=WAIT_MS)
    await expect(first.locator(".score")).to_have_text("40")
    assert await page.evaluate("window.__sameDocument === true")
    assert await page.eval_on_selector('#board li[data-user-id="bob"]', "li => li.__mark") == 42
    await seed(server, {"carol": 10})
    await expect(page.locator('#board li[data-user-id="carol"] .rank')).to_have_text(
        "3", timeout=WAIT_MS
    )


async def test_the_page_reconnects_after_a_restart(
    start_server: ServerFactory, page: Any
) -> None:
    from playwright.async_api import expect

    ports = {"server.http_port": free_port(), "server.ws_port": free_port()}
    first = await start_server(**ports)
    await seed(first, {"alice": 20})
    await open_live(page, first)
    await expect(page.locator("#board li")).to_have_count(1, timeout=WAIT_MS)
    await first.stop()
    await expect(page.locator("#status")).not_to_have_attribute(
        "data-state", "live", timeout=WAIT_MS
    )
    second = await start_server(**ports)  # same ports, same data
    await seed(second, {"bob": 30})
    await expect(page.locator("#board li").first).to_have_attribute(
        "data-user-id", "bob", timeout=WAIT_MS
    )
    await expect(page.locator("#board li")).to_have_count(2)
    await expect(page.locator("#status")).to_have_attribute("data-state", "live",
                                                             timeout=WAIT_MS)


async def test_own_rank_from_the_fragment_never_in_an_http_url(
    server: Running, page: Any
) -> None:
    from playwright.async_api import expect

    await seed(server, {f"user{i:02d}": 10 * (i + 2) for i in range(11)})
    await seed(server, {"dana": 10})
    token = server.token("dana", "Dana")
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    await open_live(page, server, f"#token={token}")
    me = page.locator("#me")
    await expect(me).to_contain_text("rank #12", timeout=WAIT_MS)
    await expect(me).to_contain_text("Dana")
    await expect(me).to_contain_text("points to the top 10")
    http = [u for u in urls if u.startswith("http")]
    assert http and not any(token in u for u in http)
    await seed(server, {"dana": 200})  # into the top 10: the panel follows
    await expect(me).to_contain_text("in the top 10", timeout=WAIT_MS)
    await expect(page.locator('#board li[data-user-id="dana"]')).to_have_class("row mine")


async def test_a_refused_token_in_the_fragment_leaves_the_board_live(
    server: Running, page: Any
) -> None:
    from playwright.async_api import expect

    await seed(server, {"alice": 20})
    await open_live(page, server, "#token=not-a-token")  # live: the board is public
    await expect(page.locator("#board li")).to_have_count(1, timeout=WAIT_MS)
    await expect(page.locator("#me")).to_contain_text("not valid", timeout=WAIT_MS)
    await seed(server, {"bob": 30})
    await expect(page.locator("#board li").first).to_have_attribute(
        "data-user-id", "bob", timeout=WAIT_MS
    )


async def test_falls_back_to_sse_then_to_polling(start_server: ServerFactory, page: Any) -> None:
    from playwright.async_api import expect

    closed = free_port()  # nothing listens here: the WebSocket cannot open
    r = await start_server(**{"live.public_ws_url": f"ws://127.0.0.1:{closed}/live"})
    await seed(r, {"alice": 10})
    await open_live(page, r)
    status = page.locator("#status")
    await expect(status).to_have_attribute("data-transport", "sse")
    await seed(r, {"bob": 20})
    await expect(page.locator("#board li").first).to_have_attribute(
        "data-user-id", "bob", timeout=WAIT_MS
    )

    await page.route("**/api/v1/leaderboard/stream*", lambda route: route.abort())
    page2 = await page.context.new_page()
    await page2.route("**/api/v1/leaderboard/stream*", lambda route: route.abort())
    await page2.goto(f"{r.url}/")
    await expect(page2.locator("#status")).to_have_attribute("data-state", "polling",
                                                              timeout=WAIT_MS)
    await seed(r, {"carol": 30})
    await expect(page2.locator("#board li").first).to_have_attribute(
        "data-user-id", "carol", timeout=WAIT_MS
    )


async def test_live_config_and_page_headers(server: Running) -> None:
    async with server.http.get(f"{server.url}/") as resp:
        assert resp.status == 200 and resp.content_type == "text/html"
        html = await resp.text()
        assert "default-src 'self'" in resp.headers["Content-Security-Policy"]
    assert f'data-ws-port="{server.service.ws_port}"' in html
    status, config = await server.get("/api/v1/live-config")
    assert status == 200 and config["wsPort"] == server.service.ws_port
    assert config["wsPath"] == "/api/v1/leaderboard/live" and config["wsUrl"] == ""
    names = ("app.js", "board.js", "me.js", "period.js", "past.js", "style.css", "sdk/index.js",
             "sdk/subscription.js")
    for name in names:
        async with server.http.get(f"{server.url}/static/{name}") as resp:
            assert resp.status == 200, name
            if name.endswith(".js"):
                assert "javascript" in resp.content_type


async def test_static_refusals_are_json_and_the_icon_is_served(server: Running) -> None:
    for path in ("/static/", "/static/nope.js", "/static/.hidden", "/static/index.html",
                 "/static/..%2Fapp.py", "/static/sub/app.js"):
        async with server.http.get(f"{server.url}{path}") as resp:
            assert resp.status == 404, path
            assert resp.content_type == "application/json", path
            body = await resp.json()
            assert body["error"]["code"] == "NOT_FOUND" and body["error"]["requestId"], path
    async with server.http.get(f"{server.url}/") as resp:
        assert '<link rel="icon" href="/static/favicon.svg"' in await resp.text()
    async with server.http.get(f"{server.url}/static/favicon.svg") as resp:
        assert resp.status == 200 and resp.content_type == "image/svg+xml"
        assert (await resp.text()).startswith("<svg")
    async with server.http.get(f"{server.url}/favicon.ico") as resp:
        assert resp.status == 200 and resp.content_type == "image/svg+xml"
        assert (await resp.text()).startswith("<svg")


async def test_a_weekly_board_its_countdown_switcher_and_past_periods(
    server: Running, page: Any
) -> None:
    from playwright.async_api import expect

    status, made = await call(server, "PUT", "/admin/boards/weekly",
                              {"reason": "page", "title": "Weekly cup", "reset": "weekly"})
    assert status == 200, made
    period = made["board"]["period"]["id"]
    await scores(server, {"amy": 3, "bob": 2}, board="weekly")
    await seed(server, {"zed": 10})  # on global only
    await open_live(page, server, "?board=weekly")
    await expect(page.locator("#title")).to_have_text("Weekly cup")
    await expect(page.locator("#period-id")).to_have_text(period)
    await expect(page.locator("#countdown")).to_have_text(
        re.compile(r"^resets in (\d+d )?(\d+h )?\d+m$"))
    await expect(page.locator("#players")).to_have_text("2 players", timeout=WAIT_MS)
    picker = page.locator("#picker")
    await expect(picker).to_have_value("weekly")
    assert await picker.locator("option").evaluate_all(
        "os => os.map(o => o.value)") == ["global", "weekly"]
    await expect(page.locator("#board li")).to_have_count(2, timeout=WAIT_MS)
    live = await rows(page)
    assert [r[2] for r in live] == ["30", "20"]
    await expect(page.locator("#past")).to_be_hidden()

    status, _ = await call(server, "POST", "/admin/boards/weekly/reset", {"reason": "end"})
    assert status == 200
    # The live feed names no period yet: the next update's count reply shows the change.
    await scores(server, {"cat": 1}, board="weekly")
    await expect(page.locator("#period-id")).to_have_text(f"{period}.2", timeout=WAIT_MS)
    await expect(page.locator("#board li")).to_have_count(1, timeout=WAIT_MS)
    await expect(page.locator("#past")).to_be_visible(timeout=WAIT_MS)
    await page.locator("#past summary").click()
    closed = page.locator(f'#past-list button[data-period="{period}"]')
    await expect(closed).to_contain_text(f"2 players · won by {live[0][1]}")
    await closed.click()
    await expect(page.locator("#viewing")).to_contain_text(
        f"Final standings · {period} · 2 players", timeout=WAIT_MS)
    await expect(page.locator("#board li")).to_have_count(2)
    assert await rows(page) == live
    assert f"period={period}" in page.url
    await expect(page.locator("#back-live")).to_be_focused()

    await page.locator("#back-live").click()
    await expect(page.locator("#viewing")).to_be_hidden()
    await expect(page.locator("#board li")).to_have_count(1)
    await expect(page.locator("#board li").first).to_have_attribute("data-user-id", "cat")
    assert "period=" not in page.url
    await picker.select_option("global")
    await expect(page.locator("#title")).to_have_text("global")
    await expect(page.locator("#period")).to_be_hidden()
    await expect(page.locator("#board li")).to_have_count(1, timeout=WAIT_MS)
    await expect(page.locator("#status")).to_have_attribute("data-state", "live",
                                                             timeout=WAIT_MS)
    assert page.url.endswith("/?board=global")

    await page.goto(f"{server.url}/?board=nope")  # an unknown board: said, and global shown
    await expect(page.locator("#notice")).to_contain_text('no board "nope"', timeout=WAIT_MS)
    await expect(picker).to_have_value("global")
