"""The command line: `scoreboard [serve]`, `token`, `proof`, `verify`, `--version`.

The same for the `scoreboard` console script, `python -m scoreboard` and `run.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from scoreboard import __version__
from scoreboard.core.rules import MAX_VALUE
from scoreboard.runtime import logs
from scoreboard.settings.model import Settings, SettingsError, load_settings

log = logging.getLogger("scoreboard")


def _positive(value: str) -> int:
    try:
        seconds = int(value)
    except ValueError:
        seconds = 0
    if seconds < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, not {value!r}")
    return seconds


def _value(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = MAX_VALUE + 1
    if abs(value) > MAX_VALUE:
        raise argparse.ArgumentTypeError(f"expected an integer within ±(2^53-1), not {text!r}")
    return value


def _flags(p: argparse.ArgumentParser, *, server: bool, database: bool, top: bool) -> None:
    """The flags that choose settings. A sub-command's copies default to SUPPRESS, so
    `scoreboard --data-dir X token` keeps the X given before the sub-command."""
    keep: Any = None if top else argparse.SUPPRESS
    p.add_argument("--config", default=keep, help="a TOML file layered over the defaults")
    p.add_argument("--data-dir", default=keep,
                   help="the data folder: SQLite database and secrets (default ./data)")
    if database:
        p.add_argument("--database-url", default=keep,
                       help="postgresql://… (default: SQLite in the data folder)")
    if server:
        p.add_argument("--host", default=keep, help="address to listen on")
        p.add_argument("--http-port", default=keep, help="HTTP port (default 8080)")
        p.add_argument("--ws-port", default=keep, help="WebSocket port (default 8081)")
        p.add_argument("--role", default=keep, choices=("writer", "standby", "follower"),
                       help="writer (default), standby or follower; the last two need "
                            "PostgreSQL")
    p.add_argument("--set", action="append", default=[] if top else keep,
                   metavar="SECTION.KEY=VALUE",
                   help="override any setting, e.g. --set writer.max_batch=256")
    p.add_argument("--log-level", default="INFO" if top else keep,
                   help="DEBUG, INFO (default), WARNING or ERROR")


def _parser(prog: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog, description="Scoreboard: a live top-N leaderboard service.",
        epilog="Every setting also has a SCOREBOARD_* environment variable; "
               "docs/configuration.md lists them all. '<command> --help' for each command.")
    p.add_argument("--version", action="version", version=f"scoreboard {__version__}")
    _flags(p, server=True, database=True, top=True)
    p.add_argument("--demo", action="store_true", help="serve with simulated players")
    sub = p.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="serve HTTP and WebSocket (the default)",
                           description="Serve HTTP, the WebSocket and the live page at /; "
                                       "the command when none is given. Ctrl-C stops it.")
    _flags(serve, server=True, database=True, top=False)
    serve.add_argument("--demo", action="store_true", default=argparse.SUPPRESS,
                       help="add simulated players")
    token = sub.add_parser(
        "token", help="print a user token for this server",
        description="Print a user token (a JWT signed with the server's secret) as the "
                    "last line of the output, for 'Authorization: Bearer <token>' or the "
                    "page's #token=. Run it with the server's data folder (or its secret): "
                    "it reads the secret the server made there.")
    _flags(token, server=False, database=False, top=False)
    token.add_argument("--sub", required=True, help="the user id (the token's sub)")
    token.add_argument("--name", help="the display name shown on boards")
    token.add_argument("--scope", action="append", default=[],
                       help="add a scope: admin, service, or any string (repeatable)")
    token.add_argument("--ttl", type=_positive,
                       help="seconds until it expires (default: auth.token_ttl_seconds)")
    proof = sub.add_parser(
        "proof", help="print a one-time action proof",
        description="Print a one-time action proof for one user and action type, signed "
                    "with the server's proof secret (read from its data folder), as the last "
                    "line of the output; the action's report carries it in its 'proof' field.")
    _flags(proof, server=False, database=False, top=False)
    proof.add_argument("--sub", required=True, help="the user who may use it")
    proof.add_argument("--action", required=True,
                       help='the actionType (a rule with proof = "required")')
    proof.add_argument("--board", help="the one board it is good for (default: any)")
    proof.add_argument("--ttl", type=_positive,
                       help="seconds until it expires (default: proofs.ttl_seconds)")
    proof.add_argument("--value", type=_value,
                       help='the integer it claims as val, which a rule with value = "proof" '
                            "scores (e.g. a lap time in ms)")
    verify = sub.add_parser(
        "verify", help="check the stored state against the log (read-only; the server "
                       "may be running)",
        description="Replay the action log and compare it with the stored state and the "
                    "newest snapshot, without writing anything (the server may be running). "
                    "Prints OK and exits 0 when they match; exits 1 and says what differs "
                    "when they do not.")
    _flags(verify, server=False, database=True, top=False)
    return p


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    for flag, key in (("host", "server.host"), ("http_port", "server.http_port"),
                      ("ws_port", "server.ws_port"), ("data_dir", "server.data_dir"),
                      ("database_url", "server.database_url"), ("role", "server.role")):
        value = getattr(args, flag, None)
        if value is not None:
            overrides[key] = value
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise SettingsError(f"--set {item}: expected SECTION.KEY=VALUE")
        overrides[key.strip()] = value
    return load_settings(overrides, config_file=args.config)


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    args = _parser(prog).parse_args(argv)
    logs.setup(args.log_level)
    try:
        settings = _settings(args)
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    command = args.command or "serve"
    if command == "token":
        return _token(settings, args)
    if command == "proof":
        return _proof(settings, args)
    if command == "verify":
        from scoreboard.storage.verify import verify

        return asyncio.run(verify(settings))
    return _serve(settings, demo=bool(args.demo))


def _existing_secret(what: str, configured: str, data_dir: Path, file_name: str,
                     setting: str, variable: str) -> bytes | None:
    """The secret the server uses, or None after saying where it looked and what to do.

    Never creates one: a token signed with a new secret would only be refused with 401 by
    the server, which has its own.
    """
    from scoreboard.auth.tokens import SecretFileError, read_secret_file

    if configured:
        print(f"{what} secret: {setting} (from {variable} or a config file)", file=sys.stderr)
        return configured.encode()
    path = data_dir / file_name
    try:
        secret = read_secret_file(path)
    except SecretFileError as exc:
        print(f"no {what} secret: {exc}", file=sys.stderr)
        return None
    except OSError as exc:
        print(
            f"no {what} secret: cannot read {path.resolve()} ({exc.strerror or exc}).\n"
            f"Looked in the data folder {data_dir.resolve()}, where the server creates it "
            "on its first start. Start the server once with this data folder, point at the "
            f"server's folder with --data-dir (or SCOREBOARD_DATA_DIR), or set {variable}.",
            file=sys.stderr,
        )
        return None
    print(f"{what} secret: {path.resolve()}", file=sys.stderr)
    return secret


def _token(settings: Settings, args: argparse.Namespace) -> int:
    from scoreboard.auth.tokens import SECRET_FILE, Authenticator

    aliases = {"admin": settings.auth.admin_scope, "service": settings.auth.service_scope}
    scopes = tuple(aliases.get(s, s) for s in args.scope)
    secret = _existing_secret("token", settings.auth.jwt_secret, settings.server.data_dir,
                              SECRET_FILE, "auth.jwt_secret", "SCOREBOARD_JWT_SECRET")
    if secret is None:
        return 1
    auth = Authenticator(settings.auth, secret)
    print(auth.mint(args.sub, name=args.name, scopes=scopes, ttl=args.ttl))
    return 0


def _proof(settings: Settings, args: argparse.Namespace) -> int:
    from scoreboard.app import PROOF_SECRET_FILE
    from scoreboard.auth.proofs import ProofAuthority

    if args.action not in settings.rules:
        print(f"unknown action type {args.action!r}", file=sys.stderr)
        return 2
    if args.value is not None and not settings.rules[args.action].valued:
        print(f'{args.action} does not score a value (no value = "proof")', file=sys.stderr)
        return 2
    if args.board is not None and args.board not in settings.leaderboard.boards:
        print(f"unknown board {args.board!r}", file=sys.stderr)
        return 2
    secret = _existing_secret("proof", settings.proofs.secret, settings.server.data_dir,
                              PROOF_SECRET_FILE, "proofs.secret", "SCOREBOARD_PROOF_SECRET")
    if secret is None:
        return 1
    authority = ProofAuthority(settings.proofs, secret)
    print(authority.mint(args.sub, args.action, ttl=args.ttl, board=args.board,
                         value=args.value))
    return 0


def _serve(settings: Settings, *, demo: bool) -> int:
    try:
        import uvloop
    except ImportError:  # optional: plain asyncio works, a little slower
        runner = asyncio.run
    else:
        runner = uvloop.run  # type: ignore[assignment]
    try:
        return runner(_serve_async(settings, demo=demo))
    except KeyboardInterrupt:
        return 0


async def _serve_async(settings: Settings, *, demo: bool) -> int:
    # The service's imports make only long-lived objects (classes, functions, tables):
    # the cyclic collector, which runs every few hundred of them, finds nothing to free
    # and costs about 5% of the import. Recovery freezes them all once it is done.
    gc.disable()
    try:
        from scoreboard.app import serve
    finally:
        gc.enable()
    return await serve(settings, demo=demo)
