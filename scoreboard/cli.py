"""The command line: `scoreboard [serve]`, `token`, `proof`, `verify`, `--version`.

The same for the `scoreboard` console script, `python -m scoreboard` and `run.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from scoreboard import __version__
from scoreboard.runtime import logs
from scoreboard.settings.model import Settings, SettingsError, load_settings

log = logging.getLogger("scoreboard")


def _parser(prog: str | None = None) -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", help="a TOML file layered over the defaults")
    common.add_argument("--host")
    common.add_argument("--http-port")
    common.add_argument("--ws-port")
    common.add_argument("--data-dir")
    common.add_argument("--database-url", help="postgresql://… (default: SQLite in data dir)")
    common.add_argument("--role", choices=("writer", "standby", "follower"),
                        help="writer (default), standby or follower; the last two need "
                             "PostgreSQL")
    common.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override any setting, e.g. --set writer.max_batch=256")
    common.add_argument("--log-level", default="INFO")

    p = argparse.ArgumentParser(prog=prog, parents=[common],
                                description="Scoreboard: a live top-N leaderboard service.")
    p.add_argument("--version", action="version", version=f"scoreboard {__version__}")
    sub = p.add_subparsers(dest="command")
    serve = sub.add_parser("serve", parents=[common], help="serve HTTP and WebSocket (default)")
    serve.add_argument("--demo", action="store_true", help="add simulated players")
    p.add_argument("--demo", action="store_true", help=argparse.SUPPRESS)
    token = sub.add_parser("token", parents=[common], help="print a user token for this server")
    token.add_argument("--sub", required=True)
    token.add_argument("--name")
    token.add_argument("--scope", action="append", default=[],
                       help="add a scope: admin, service, or any string")
    token.add_argument("--ttl", type=int, help="seconds until it expires")
    proof = sub.add_parser("proof", parents=[common], help="print a one-time action proof")
    proof.add_argument("--sub", required=True)
    proof.add_argument("--action", required=True)
    proof.add_argument("--ttl", type=int)
    sub.add_parser("verify", parents=[common], help="check the stored state against the log")
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
    secret = _existing_secret("proof", settings.proofs.secret, settings.server.data_dir,
                              PROOF_SECRET_FILE, "proofs.secret", "SCOREBOARD_PROOF_SECRET")
    if secret is None:
        return 1
    print(ProofAuthority(settings.proofs, secret).mint(args.sub, args.action, ttl=args.ttl))
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
    from scoreboard.app import serve

    return await serve(settings, demo=demo)
