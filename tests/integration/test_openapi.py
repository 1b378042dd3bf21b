"""GET /openapi.json: a valid OpenAPI 3.1 document, in step with the router, and true of
the live service.

Schemathesis runs every operation over real sockets (its examples, coverage and
fuzzing phases, positive and negative cases) and checks each answer: no 5xx, a
documented status, content type, headers and body, invalid requests refused, valid
ones not refused as malformed. The SSE stream is read up to its first event, which is
checked against the documented event schema."""

from __future__ import annotations

import asyncio
import html
import re
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import jsonschema_rs
import orjson
import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, Phase, settings

from scoreboard.app import Service
from scoreboard.edge.contract import DOCS_PATH, EVENTS_PATH, OPENAPI_PATH, STREAM_PATH
from scoreboard.graphql.deferred import GRAPHQL_PATH
from scoreboard.http.openapi import build_openapi
from scoreboard.settings.model import Settings
from tests.integration.conftest import Running, make_settings

T = TypeVar("T")

METHODS = ("get", "put", "post", "delete", "patch", "options", "head", "trace")
# The page's files are served from a folder, not described one by one.
STATIC_PREFIX = "/static"

# the operations that need a scope
PRIVILEGED = "^/api/v1/(admin/|proofs$|scores/actions/batch$|events$)"
MAX_EXAMPLES = 25  # fuzzed cases per operation, beside the examples and coverage cases
# Operations where a request the document calls valid can still be malformed in a way
# JSON Schema cannot say: metadata over its byte size, a delta pushing a score past
# ±(2^53-1), or an integer written as a float (5.0: JSON Schema counts it as an
# integer, the service refuses it as the wrong type), a leaderboard cursor the service
# did not make (it is opaque), a board definition whose time zone or schedule does not
# exist.
LOOSE_400 = frozenset({"reportAction", "reportActions", "adjustScore", "mintProof",
                       "getLeaderboard", "putBoard"})
CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_headers_conformance,
    schemathesis.checks.response_schema_conformance,
    schemathesis.checks.negative_data_rejection,
    schemathesis.checks.missing_required_header,  # no Authorization where needed: 401
    schemathesis.checks.unsupported_method,  # an undocumented method: 405 with Allow
    schemathesis.checks.allow_header_conformance,
    # Not ignored_auth: the credentials are fixed headers, which its altered ones lose to.
]


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only: the document does not depend on the backend, and the fuzzing run is
    about the HTTP layer."""
    return f"sqlite:///{tmp_path / 'db' / 'scoreboard.db'}"


def documented(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in doc["paths"].items()
        for method in item
        if method in METHODS
    }


def routed(app: web.Application) -> set[tuple[str, str]]:
    out = set()
    for resource in app.router.resources():
        if isinstance(resource, web.StaticResource) or resource.canonical == GRAPHQL_PATH:
            continue  # GraphQL describes itself (introspection), not in OpenAPI
        for route in resource:
            # aiohttp adds a HEAD beside every GET; "*" is the catch-all answering
            # unknown paths and wrong methods in the error shape
            if route.method not in ("HEAD", "*"):
                out.add((route.method, resource.canonical))
    return out


# -- the document ------------------------------------------------------------------------


def test_document_is_valid_openapi_31(tmp_path: Path) -> None:
    doc = build_openapi(make_settings(tmp_path, f"sqlite:///{tmp_path / 'x.db'}"))
    assert doc["openapi"].startswith("3.1.")
    # The official OpenAPI 3.1 meta-schema (schemathesis ships it), then every schema
    # object against JSON Schema 2020-12, compiled with its references resolved.
    schemathesis.openapi.from_dict(doc, config=schemathesis.Config()).validate()
    for name, schema in doc["components"]["schemas"].items():
        jsonschema_rs.meta.validate(
            {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
        )
        jsonschema_rs.validator_for({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$ref": f"#/components/schemas/{name}",
            "components": doc["components"],
        })
    orjson.dumps(doc)  # plain JSON all the way down


async def test_served_document_matches_the_router(server: Running) -> None:
    async with server.http.get(f"{server.url}{OPENAPI_PATH}") as r:
        assert r.status == 200
        assert r.content_type == "application/json"
        served = await r.json()
    assert served == orjson.loads(orjson.dumps(build_openapi(server.settings)))
    in_router = routed(server.service.app)
    in_doc = documented(served)
    assert in_router - in_doc == set(), "routes missing from the OpenAPI document"
    assert in_doc - in_router == set(), "documented operations with no route"
    for resource in server.service.app.router.resources():
        if isinstance(resource, web.StaticResource):
            assert resource.canonical.startswith(STATIC_PREFIX)


async def test_stream_is_documented_as_event_stream(server: Running) -> None:
    status, doc = await server.get(OPENAPI_PATH)
    assert status == 200
    ok = doc["paths"][STREAM_PATH]["get"]["responses"]["200"]
    assert list(ok["content"]) == ["text/event-stream"]
    event = doc["components"]["schemas"]["LiveEvent"]
    assert event["properties"]["event"] == {"enum": ["leaderboard"]}
    assert event["properties"]["data"]["contentSchema"] == {
        "$ref": "#/components/schemas/LiveUpdate"
    }


async def test_docs_page_names_every_operation(server: Running) -> None:
    async with server.http.get(f"{server.url}{DOCS_PATH}") as r:
        assert r.status == 200 and r.content_type == "text/html"
        assert "script-src" not in r.headers["Content-Security-Policy"]  # no script at all
        page = await r.text()
    doc = build_openapi(server.settings)
    for path, item in doc["paths"].items():
        for method, op in item.items():
            assert f'id="{op["operationId"]}"' in page
            assert f"{method.upper()}</span> <code>{html.escape(path)}</code>" in page
    # a request body's fields with their constraints, and a route's error codes
    assert "<code>clientActionId</code>" in page and "max length 128" in page
    assert "<code>IDEMPOTENCY_CONFLICT</code>" in page
    stylesheet = re.search(r'<link rel="stylesheet" href="([^"]+)"', page)
    assert stylesheet is not None and "//" not in stylesheet[1]  # from the package
    async with server.http.get(f"{server.url}{stylesheet[1]}") as r:
        assert r.status == 200 and r.content_type == "text/css"


# -- fuzzing the live service ------------------------------------------------------------


@dataclass
class Live:
    """A service on its own event loop in a thread: schemathesis' pytest integration
    runs a synchronous test with blocking requests, which the test's own loop (idle
    while a sync test runs) could not answer."""

    settings: Settings
    service: Service

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.service.http_port}"

    def bearer(self, sub: str, name: str, scopes: tuple[str, ...] = ()) -> str:
        return f"Bearer {self.service.auth.mint(sub, name=name, scopes=scopes)}"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    root = tmp_path_factory.mktemp("openapi")
    settings = make_settings(
        root / "data", f"sqlite:///{root / 'db' / 'scoreboard.db'}",
        # Streams the client dropped are noticed at the next heartbeat, and each case
        # opens a new one: no per-user cap, so they never pile up into 503s.
        **{"live.sse_heartbeat": 0.2, "live.max_connections_per_user": 0,
           "events.max_wait": 1.0},  # long polls end within a request's timeout
    )
    loop = asyncio.new_event_loop()
    errors: list[dict[str, Any]] = []

    def record(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        errors.append(context)
        loop.default_exception_handler(context)

    loop.set_exception_handler(record)
    thread = threading.Thread(target=loop.run_forever, name="openapi-service", daemon=True)
    thread.start()

    def run(coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=30)

    async def start() -> Service:
        service = Service.build(settings)
        await service.start()
        return service

    try:
        service = run(start())
        try:
            yield Live(settings, service)
        finally:
            run(service.stop())
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
    assert not errors, f"the service's event loop logged unhandled exceptions: {errors}"


@pytest.fixture
def api_schema(live: Live) -> schemathesis.BaseSchema:
    """The document the service serves, with credentials per operation.

    Loaded from the dict: schemathesis leaves out the operation a schema was fetched
    from by URL, and /openapi.json should be tested too. The credentials are fixed
    headers, so generated cases (negative ones too) never alter them.
    """
    scopes = (live.settings.auth.admin_scope, live.settings.auth.service_scope)
    user = live.bearer("alice", "Alice")
    with requests.Session() as http:
        for i, who in enumerate(("alice", "bob", "carol")):  # reads about alice find her
            r = http.post(f"{live.url}/api/v1/scores/actions",
                          json={"actionType": "COMPLETE_LEVEL", "clientActionId": f"seed-{i}"},
                          headers={"Authorization": live.bearer(who, who.title())}, timeout=10)
            assert r.status_code == 200, r.text
        raw = http.get(f"{live.url}{OPENAPI_PATH}", timeout=10).json()
    config = schemathesis.Config.from_dict({
        "base-url": live.url,
        "request-timeout": 10,
        # Per operation only: a project-wide header would win over these when fuzzing.
        "operations": [
            {"exclude-path-regex": PRIVILEGED, "headers": {"Authorization": user}},
            {
                "include-path-regex": PRIVILEGED,
                "headers": {"Authorization": live.bearer("root", "Root", scopes)},
            },
            {
                # Endless: read the first event (the snapshot), or give up after 2 s
                # when there is none (a Last-Event-ID that is already current).
                "include-path": STREAM_PATH,
                "max-stream-events": 1,
                "request-timeout": 2,
            },
            {"include-path": EVENTS_PATH, "max-stream-events": 1, "request-timeout": 3},
        ],
        "phases": {
            "examples": {"enabled": True},
            "coverage": {"enabled": True},
            "fuzzing": {"enabled": True},
        },
        "checks": {
            # 413 too: an oversized negative body is refused before it is read.
            "negative_data_rejection": {
                "expected-statuses": [400, 401, 403, 404, 409, 413, 415, 422, 429],
            },
            # A request the document calls valid may be refused for what it is about
            # (an unknown user, a spent key, a quota), never as malformed.
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", 304, 401, 403, 404, 409, 422, 429, 503],
            },
        },
    })
    return schemathesis.openapi.from_dict(raw, config=config)


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.mark.slow  # generated requests against a live service: over a minute here
@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: report the case found
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_live_service_conforms_to_its_document(case: schemathesis.Case[Any]) -> None:
    checks = CHECKS
    if case.operation.definition.raw.get("operationId") not in LOOSE_400:
        checks = [*CHECKS, schemathesis.checks.positive_data_acceptance]
    case.call_and_validate(checks=checks)
