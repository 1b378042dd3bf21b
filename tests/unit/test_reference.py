"""The API reference at /docs, read as a reader would: every schema a route names is
on the page with its fields, every link lands, and no raw markdown is left."""

from __future__ import annotations

import re
from pathlib import Path

from scoreboard.http.openapi import build_openapi
from scoreboard.http.reference import render
from scoreboard.settings.model import load_settings


def page(tmp_path: Path) -> tuple[dict[str, object], str]:
    settings = load_settings({
        "server.data_dir": str(tmp_path),
        "auth.jwt_secret": "unit-test-secret-0123456789abcdef",
        "proofs.secret": "unit-proof-secret-0123456789abcdef",
    }, environ={})
    doc = build_openapi(settings)
    return doc, render(doc, "/static/docs.css").decode()


def test_every_link_lands_and_every_schema_lists_its_fields(tmp_path: Path) -> None:
    doc, html = page(tmp_path)
    ids = set(re.findall(r' id="([^"]+)"', html))
    links = set(re.findall(r' href="#([^"]+)"', html))
    assert links and links <= ids, links - ids
    schemas = doc["components"]["schemas"]  # type: ignore[index]
    for name, schema in schemas.items():
        assert f'id="schema-{name}"' in html, name
        section = html.split(f'id="schema-{name}"', 1)[1].split('<h3 id="schema-', 1)[0]
        for field in schema.get("properties", {}):
            assert f"<code>{field}</code>" in section, (name, field)
    # a response names its schema as a link a reader can follow
    assert '<td>application/json: <a href="#schema-Around">Around</a></td>' in html
    # "any other field is refused" is said of what clients send, not of answers
    def note(name: str) -> bool:
        section = html.split(f'id="schema-{name}"', 1)[1].split("<h3", 1)[0]
        return "Any other field is refused" in section

    assert note("ActionRequest") and note("BatchAction")
    assert not note("Around") and not note("ActionResult")


def test_code_spans_are_code_not_backticks(tmp_path: Path) -> None:
    _, html = page(tmp_path)
    assert "`" not in html
    assert "<code>replayed: true</code>" in html
