"""The manual stays true: links resolve, shown commands parse, named variables and API
paths exist.

Commands are parsed by the real command-line parser, variables are checked against the
settings (the alias table and the keys of the packaged defaults), and API paths against
the OpenAPI document the service serves.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

from scoreboard.cli import _parser
from scoreboard.edge import contract
from scoreboard.http.openapi import build_openapi
from scoreboard.settings import model
from scoreboard.settings.model import load_settings

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
README_MAX_BYTES = 16 * 1024
MANUAL = ["index.md", "getting-started.md", "api.md", "boards.md", "live.md", "configuration.md",
          "operations.md", "scaling-out.md", "security.md", "clients.md", "benchmarks.md"]
# Generated from the settings model by its own change; may be absent until that lands.
GENERATED: set[Path] = set()


def _text(page: Path) -> str:
    return page.read_text(encoding="utf-8")


def _name(page: Path) -> str:
    return str(page.relative_to(ROOT))


def _prose(text: str) -> str:
    """The text outside fenced code blocks."""
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def _anchors(text: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    found = set()
    for heading in re.findall(r"^#+ (.+)$", _prose(text), flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found.add(slug)
    return found


def _links() -> Iterator[tuple[Path, str]]:
    for page in PAGES:
        for target in re.findall(r"\]\(([^)\s]+)\)", _prose(_text(page))):
            if not re.match(r"[a-z]+:", target):
                yield page, target


def test_readme_is_short_and_maps_every_page_of_the_manual() -> None:
    readme = ROOT / "README.md"
    assert readme.stat().st_size <= README_MAX_BYTES, readme.stat().st_size
    for doc in (_text(readme), _text(DOCS / "index.md")):
        for page in MANUAL[1:]:
            assert f"{page})" in doc, f"{page} is not in the map"


def test_manual_pages_exist() -> None:
    missing = [p for p in MANUAL if not (DOCS / p).exists() and DOCS / p not in GENERATED]
    assert not missing


@pytest.mark.parametrize(("page", "target"), list(_links()),
                         ids=[f"{_name(p)}->{t}" for p, t in _links()])
def test_relative_link_resolves(page: Path, target: str) -> None:
    path, _, anchor = target.partition("#")
    file = (page.parent / path).resolve() if path else page
    if file in GENERATED and not file.exists():
        pytest.skip(f"{_name(file)} is generated and not here yet")
    assert file.exists(), f"{_name(page)}: {target} points at nothing"
    if anchor and file.suffix == ".md":
        assert anchor in _anchors(_text(file)), f"{_name(page)}: no heading #{anchor}"


# -- commands ----------------------------------------------------------------------------

PROGRAMS = {("scoreboard",), ("python", "run.py"), ("python", "-m", "scoreboard")}
OPERATORS = {"|", "||", "&&", ";", ">", ">>", "<", "&"}


def _shell_snippets(text: str) -> Iterator[tuple[str, bool]]:
    """Each logical line of the shell blocks (whole commands), and each inline code span
    (which may name a subcommand without its required arguments, as prose does)."""
    for block in re.findall(r"^```(?:sh|bash)\n(.*?)^```", text, flags=re.S | re.M):
        for line in block.replace("\\\n", " ").splitlines():
            yield line, True
    for span in re.findall(r"`([^`\n]+)`", _prose(text)):
        yield span, False


def _words(snippet: str) -> list[str]:
    lexer = shlex.shlex(snippet.replace("$(", " ; ").replace(")", " ; "),
                        posix=True, punctuation_chars=";&|<>")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    return list(lexer)


def _program(words: list[str], at: int) -> int | None:
    """How many words name our command line at `at`, if they do."""
    for program in PROGRAMS:
        head = [Path(w).name if i == 0 else w for i, w in enumerate(words[at:at + len(program)])]
        if program[0] == "python":
            head[:1] = ["python"] if head and re.fullmatch(r"python3?", head[0]) else head[:1]
        if tuple(head) == program:
            return len(program)
    return None


def _commands(snippet: str) -> Iterator[list[str]]:
    """The argument lists given to our command line in one shell line."""
    words = _words(snippet)
    starts = {0}
    for i, word in enumerate(words):
        if word in OPERATORS:
            starts.add(i + 1)
        elif word == "exec" and i > 0 and words[i - 1] in ("docker", "podman"):
            starts.add(i + 2)  # docker exec CONTAINER COMMAND…
    for start in sorted(starts):
        while start < len(words) and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[start]):
            start += 1  # VAR=value before the command
        size = _program(words, start)
        if size is None:
            continue
        end = start + size
        while end < len(words) and words[end] not in OPERATORS:
            end += 1
        yield words[start + size:end]


def _documented_commands() -> list[tuple[str, list[str], bool]]:
    found = []
    for page in PAGES:
        for snippet, whole in _shell_snippets(_text(page)):
            try:
                found += [(_name(page), args, whole) for args in _commands(snippet)]
            except ValueError as exc:  # unbalanced quotes: only fine where nothing is run
                assert "scoreboard" not in snippet and "run.py" not in snippet, (snippet, exc)
    return found


def _setting_names() -> set[str]:
    return {key.name for table in model.TABLES for key in table.keys}


def _is_setting(dotted: str) -> bool:
    parts = dotted.split(".")
    if parts[0] == "rules":
        return len(parts) == 3 and parts[2] in ("points", "limit", "window", "proof")
    return dotted in _setting_names()


def test_the_docs_show_the_main_commands() -> None:
    shown = {args[0] if args and not args[0].startswith("-") else "serve"
             for _, args, _ in _documented_commands()}
    assert {"serve", "token", "proof", "verify"} <= shown, shown


@pytest.mark.parametrize(("page", "args", "whole"), _documented_commands(),
                         ids=[f"{p}:{' '.join(a)}" for p, a, _ in _documented_commands()])
def test_documented_command_parses(page: str, args: list[str], whole: bool,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    try:
        parsed = _parser("scoreboard").parse_args(args)
    except SystemExit as exc:  # --version and --help exit 0; a parse error exits 2
        err = capsys.readouterr().err
        if not whole and "the following arguments are required" in err:
            return  # prose naming a subcommand and some of its flags
        assert exc.code == 0, f"{page}: scoreboard {' '.join(args)}: {err}"
        return
    for item in parsed.set:
        key, sep, _ = item.partition("=")
        assert sep and _is_setting(key), f"{page}: --set {item} names no setting"


def test_a_wrong_command_would_be_caught() -> None:
    (args,) = _commands("TOKEN=$(scoreboard tokens --sub alice | tail -n1)")
    with pytest.raises(SystemExit):
        _parser("scoreboard").parse_args(args)
    assert list(_commands("docker exec sb scoreboard verify --data-dir d")) == [
        ["verify", "--data-dir", "d"]]
    assert list(_commands("docker build -t scoreboard .")) == []


def test_documented_bench_modules_exist() -> None:
    for page in PAGES:
        for module in re.findall(r"python -m (bench(?:\.\w+)?)", _text(page)):
            path = ROOT / Path(*module.split("."))
            assert path.with_suffix(".py").exists() or (path / "__main__.py").exists(), module
        for script in re.findall(r"python (bench/\w+\.py)", _text(page)):
            assert (ROOT / script).exists(), script


# -- settings ----------------------------------------------------------------------------

def _accepted_variables() -> set[str]:
    """What the settings read: every key's variables (from the settings model) and
    SCOREBOARD_CONFIG."""
    return {"SCOREBOARD_CONFIG",
            *(v for table in model.TABLES for key in table.keys for v in key.variables)}


def _test_variables() -> set[str]:
    """Variables the test suite itself reads (documented for people running it)."""
    names: set[str] = set()
    for source in (ROOT / "tests").rglob("*.py"):
        names |= set(re.findall(r"SCOREBOARD_TEST_\w+", source.read_text(encoding="utf-8")))
    return names


def test_every_documented_variable_is_read() -> None:
    accepted = _accepted_variables() | _test_variables()
    unknown = {
        (_name(page), var)
        for page in PAGES
        for var in re.findall(r"\bSCOREBOARD_[A-Z][A-Z0-9_]*[A-Z0-9]\b", _text(page))
        if var not in accepted
    }
    assert not unknown


def test_the_variable_rule_matches_the_settings() -> None:
    """The derived names are the ones loading honours (so the check above means it)."""
    settings = load_settings(environ={"SCOREBOARD_WRITER__MAX_BATCH": "7",
                                      "SCOREBOARD_EVENTS__NATS__STREAM": "S7"})
    assert settings.writer.max_batch == 7
    assert settings.events.nats.stream == "S7"
    assert {"SCOREBOARD_WRITER__MAX_BATCH", "SCOREBOARD_EVENTS__NATS__STREAM",
            "SCOREBOARD_HTTP_PORT"} <= _accepted_variables()


# -- API paths ---------------------------------------------------------------------------

METHOD_PATH = re.compile(r"\b(GET|POST|PUT|PATCH|DELETE) (/[^\s`?,)]*)")
API_PATH = re.compile(r"(/api/v1/[^\s`?,)\"'\\]*)")


def _openapi_paths() -> dict[str, set[str]]:
    document = build_openapi(load_settings(environ={}))
    return {path: set(ops) for path, ops in document["paths"].items()}


def _template(paths: dict[str, set[str]], concrete: str) -> str | None:
    for path in paths:
        if re.fullmatch(re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(path)), concrete):
            return path
    return None


def test_every_api_path_in_the_api_page_is_served() -> None:
    paths = _openapi_paths()
    text = _text(DOCS / "api.md")
    wrong = []
    for path in API_PATH.findall(text):
        path = path.rstrip(".:…/")
        if path in (contract.LIVE_PATH, f"{contract.API}/admin"):
            continue  # the WebSocket port; the admin prefix in the route table
        if _template(paths, path) is None:
            wrong.append(path)
    for method, path in METHOD_PATH.findall(text):
        template = _template(paths, path.rstrip(".:"))
        if template is None or method.lower() not in paths[template]:
            wrong.append(f"{method} {path}")
    assert not wrong, wrong


def test_every_served_path_is_in_the_api_page() -> None:
    text = _text(DOCS / "api.md")
    assert [p for p in _openapi_paths() if f"`GET {p}`" not in text and p not in text] == []
