"""The ceiling: a bare aiohttp app on the same loop setup, answering fixed replies.

GET /bare returns a fixed top-10-sized JSON body; POST /bare reads and parses the JSON
body and returns a fixed reply. Nothing else: no auth, no storage.
"""

from __future__ import annotations

import argparse

import orjson
from aiohttp import web

BODY = orjson.dumps({
    "board": "global",
    "entries": [{"rank": i, "userId": f"user{i}", "displayName": f"User {i}", "score": 1000 - i}
                for i in range(1, 11)],
    "totalUsers": 1000, "version": 1, "generatedAt": "2026-01-01T00:00:00.000Z",
})
REPLY = orjson.dumps({"ok": True})


async def get_bare(request: web.Request) -> web.Response:
    return web.Response(body=BODY, content_type="application/json")


async def post_bare(request: web.Request) -> web.Response:
    orjson.loads(await request.read())
    return web.Response(body=REPLY, content_type="application/json")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args()
    app = web.Application()
    app.router.add_get("/bare", get_bare)
    app.router.add_post("/bare", post_bare)
    try:
        import uvloop
        loop_factory = uvloop.new_event_loop
    except ImportError:
        loop_factory = None
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None,
                loop=loop_factory() if loop_factory else None)


if __name__ == "__main__":
    main()
