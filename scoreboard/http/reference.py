"""`GET /docs`: the OpenAPI document as a page people can read, rendered on the server.

One operation per section: method, path, summary, who may call it, its parameters,
its request body's fields (with their constraints), and each answer with its error
codes; then every schema those name, with its fields, each name a link to it.
Descriptions' `code` spans are set as code. Plain HTML and one stylesheet from the
package: no script, nothing fetched from elsewhere, and the page is built once, like
the document it renders.
"""

from __future__ import annotations

import re
from html import escape
from typing import Any

Schema = dict[str, Any]

CONSTRAINTS = (("minLength", "min length"), ("maxLength", "max length"),
               ("minimum", "≥"), ("maximum", "≤"), ("minItems", "min items"),
               ("maxItems", "max items"), ("pattern", "pattern"), ("default", "default"))


CODE_SPAN = re.compile(r"`([^`]+)`")


def render(doc: dict[str, Any], stylesheet: str) -> bytes:
    """The whole page for `doc`, an OpenAPI 3.1 document."""
    schemas: dict[str, Schema] = doc["components"]["schemas"]
    info = doc["info"]
    toc: list[str] = []
    sections: list[str] = []
    requests: set[str] = set()  # the schemas clients send, and those inside them
    for path, item in doc["paths"].items():
        for method, op in item.items():
            anchor = escape(op["operationId"])
            toc.append(f'<li><a href="#{anchor}"><span class="m {method}">{method.upper()}'
                       f'</span> {escape(path)}</a></li>')
            sections.append(_operation(path, method, op, schemas))
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
            _refs(body.get("schema", {}), schemas, requests)
    toc.append('<li><a href="#schemas">Schemas: the bodies\' fields</a></li>')
    sections.append(_schemas(schemas, requests))
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>{escape(info["title"])} API reference</title>'
        f'<link rel="stylesheet" href="{escape(stylesheet)}"></head><body>'
        f'<header><h1>{escape(info["title"])} API <small>{escape(info["version"])}</small>'
        f'</h1><p>{_text(info.get("description", ""))}</p>'
        '<p>The machine-readable document: <a href="/openapi.json">/openapi.json</a>.</p>'
        f'</header><nav><ul>{"".join(toc)}</ul></nav><main>{"".join(sections)}</main>'
        "</body></html>\n"
    ).encode()


def _operation(path: str, method: str, op: Schema, schemas: dict[str, Schema]) -> str:
    parts = [f'<section id="{escape(op["operationId"])}"><h2><span class="m {method}">'
             f'{method.upper()}</span> <code>{escape(path)}</code></h2>'
             f'<p class="summary">{_text(op["summary"])}</p>']
    if op.get("description"):
        parts.append(f'<p>{_text(op["description"])}</p>')
    parts.append(f'<p class="auth">Auth: {escape(_security(op["security"]))}</p>')
    params = [p for p in op.get("parameters", []) if "$ref" not in p]
    if params:
        rows = "".join(
            f'<tr><td><code>{escape(p["name"])}</code></td><td>{escape(p["in"])}</td>'
            f'<td>{"yes" if p.get("required") else "no"}</td>'
            f'<td>{_type(p["schema"], schemas)}</td>'
            f'<td>{_text(p.get("description", ""))}</td></tr>' for p in params)
        parts.append("<h3>Parameters</h3><table><tr><th>name</th><th>in</th><th>required"
                     f"</th><th>type</th><th>description</th></tr>{rows}</table>")
    body = op.get("requestBody")
    if body is not None:
        ref = body["content"]["application/json"]["schema"]["$ref"]
        parts.append(f"<h3>Request body <code>{_link(ref)}</code></h3>")
        parts.append(_fields(schemas[_name(ref)], schemas))
    rows = "".join(_answer(status, answer, schemas)
                   for status, answer in op["responses"].items())
    parts.append("<h3>Responses</h3><table><tr><th>status</th><th>meaning</th><th>body"
                 f"</th><th>error codes</th></tr>{rows}</table></section>")
    return "".join(parts)


def _fields(schema: Schema, schemas: dict[str, Schema], request: bool = True) -> str:
    required = set(schema.get("required", ()))
    rows = "".join(
        f'<tr><td><code>{escape(name)}</code></td>'
        f'<td>{"yes" if name in required else "no"}</td>'
        f'<td>{_type(prop, schemas)}</td>'
        f'<td>{_text(_description(prop))}</td></tr>'
        for name, prop in schema.get("properties", {}).items())
    extra = "" if not request or schema.get("additionalProperties") is not False else (
        "<p>Any other field is refused (400 <code>INVALID_REQUEST</code>).</p>")
    return ("<table><tr><th>field</th><th>required</th><th>type</th><th>description</th>"
            f"</tr>{rows}</table>{extra}")


def _answer(status: str, answer: Schema, schemas: dict[str, Schema]) -> str:
    bodies, codes = [], []
    for media, content in answer.get("content", {}).items():
        schema = content.get("schema", {})
        if "allOf" in schema:  # an error: the Error shape with its codes
            codes = schema["allOf"][1]["properties"]["error"]["properties"]["code"]["enum"]
            schema = schema["allOf"][0]
        bodies.append(f"{escape(media)}: {_type(schema, schemas)}")
    return (f"<tr><td>{escape(status)}</td><td>{_text(answer['description'])}</td>"
            f"<td>{'; '.join(bodies)}</td>"
            f"<td>{' '.join(f'<code>{escape(c)}</code>' for c in codes)}</td></tr>")


def _refs(schema: Any, schemas: dict[str, Schema], found: set[str]) -> None:
    """The names of the schemas `schema` refers to, however deep, added to `found`."""
    if isinstance(schema, list):
        for item in schema:
            _refs(item, schemas, found)
    elif isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str) and _name(ref) not in found:
            found.add(_name(ref))
            _refs(schemas.get(_name(ref), {}), schemas, found)
        for value in schema.values():
            _refs(value, schemas, found)


def _schemas(schemas: dict[str, Schema], requests: set[str]) -> str:
    """Every component schema: what a body named in the sections above holds."""
    parts = ['<section id="schemas"><h2>Schemas</h2>']
    for name, schema in schemas.items():
        parts.append(f'<h3 id="schema-{escape(name)}"><code>{escape(name)}</code></h3>')
        if schema.get("description"):
            parts.append(f"<p>{_text(schema['description'])}</p>")
        if "properties" in schema:
            parts.append(_fields(schema, schemas, request=name in requests))
        else:
            parts.append(f"<p>{_type(schema, schemas)}</p>")
    parts.append("</section>")
    return "".join(parts)


def _text(text: str) -> str:
    """Prose from the document as HTML: escaped, its `code` spans set as code."""
    return CODE_SPAN.sub(r"<code>\1</code>", escape(text))


def _link(ref: str) -> str:
    name = escape(_name(ref))
    return f'<a href="#schema-{name}">{name}</a>'


def _security(security: list[dict[str, list[str]]]) -> str:
    if not security:
        return "none"
    options = []
    for option in security:
        scopes = [s for scopes in option.values() for s in scopes]
        options.append("no token" if not option else
                       "bearer token" + (f" with scope {', '.join(scopes)}" if scopes else ""))
    return " or ".join(options)


def _name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def _description(schema: Schema) -> str:
    if "anyOf" in schema:
        return " ".join(_description(s) for s in schema["anyOf"]).strip()
    return str(schema.get("description", ""))


def _type(schema: Schema, schemas: dict[str, Schema]) -> str:
    """A short reading of a schema, as HTML: its type and constraints."""
    if "$ref" in schema:
        return _link(schema["$ref"])
    if "anyOf" in schema:
        return " or ".join(_type(s, schemas) for s in schema["anyOf"])
    if "enum" in schema:
        return "one of " + ", ".join(escape(str(v)) for v in schema["enum"])
    if "const" in schema:
        return escape(repr(schema["const"]))
    kind = escape(str(schema.get("type", "any")))
    if kind == "array" and "items" in schema:
        kind = f"array of {_type(schema['items'], schemas)}"
    notes = [f"{label} {escape(str(schema[key]))}" for key, label in CONSTRAINTS if key in schema]
    return kind + (f" ({', '.join(notes)})" if notes else "")
