"""The process (`[server]`), the single writer (`[writer]`) and request limits (`[limits]`)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Literal

from scoreboard.settings.section import Section, key, refuse

POSTGRES = ("postgresql://", "postgres://")


class ServerSettings(Section, frozen=True):
    host: Annotated[str, key("Address the HTTP and WebSocket ports listen on.",
                             min_length=1, env="SCOREBOARD_HOST")] = "127.0.0.1"
    http_port: Annotated[int, key("HTTP port (0: chosen by the OS).", ge=0, le=65535,
                                  env="SCOREBOARD_HTTP_PORT")] = 8080
    ws_port: Annotated[int, key("WebSocket live-updates port (0: chosen by the OS).", ge=0,
                                le=65535, env="SCOREBOARD_WS_PORT")] = 8081
    data_dir: Annotated[Path, key("Folder of the SQLite database and generated secrets.",
                                  env="SCOREBOARD_DATA_DIR")] = Path("./data")
    database_url: Annotated[str, key(
        "Empty: SQLite in data_dir; postgresql://user@host/db for PostgreSQL.",
        pattern=r"^((postgresql|postgres)://|sqlite:|memory:|$)",
        expected="postgresql://…, sqlite:///path or empty for SQLite",
        env="SCOREBOARD_DATABASE_URL")] = ""
    connect_timeout: Annotated[float, key(
        "How long start-up waits for the database before giving up (seconds).",
        ge=0.0, le=3600.0)] = 10.0
    shutdown_grace: Annotated[float, key(
        "How long SIGTERM waits for in-flight work before closing (seconds).",
        ge=0.0, le=600.0)] = 10.0
    trusted_proxies: Annotated[tuple[str, ...], key(
        "Addresses or CIDR ranges of reverse proxies whose X-Forwarded-For is read.")] = ()
    role: Annotated[Literal["writer", "standby", "follower"], key(
        "writer decides and appends; standby becomes the writer when the writer's lock is "
        "released; follower reads, serves live views and forwards writes. standby and "
        "follower need PostgreSQL.")] = "writer"

    def __post_init__(self) -> None:
        if self.role != "writer" and not self.database_url.startswith(POSTGRES):
            refuse("server.role", f"{self.role!r} needs PostgreSQL (server.database_url = "
                   "postgresql://…); on SQLite only the writer role exists")
        for entry in self.trusted_proxies:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                refuse("server.trusted_proxies", f"{entry!r} is not an address or a CIDR range")


class WriterSettings(Section, frozen=True):
    queue_size: Annotated[int, key("Commands waiting for the writer; more are answered 503.",
                                   ge=1, le=10_000_000)] = 10000
    max_batch: Annotated[int, key("Commands decided and committed together.",
                                  ge=1, le=100_000)] = 512
    retry_seconds: Annotated[float, key(
        "A failed commit is retried for this long while requests wait, then answered 503.",
        ge=0, le=3600)] = 5.0
    pipeline_depth: Annotated[int, key(
        "Groups decided but not yet committed and answered, at most: while one commits, "
        "the next is decided on top of it (1: one group at a time).", ge=1, le=16)] = 2
    idempotency_retention_seconds: Annotated[float, key(
        "How long an Idempotency-Key is remembered.", ge=1, le=366 * 86400)] = 3600.0
    idempotency_max_keys: Annotated[int, key("Idempotency keys remembered at most.",
                                             ge=1, le=100_000_000)] = 200000
    snapshot_every_records: Annotated[int, key(
        "A snapshot of the state after this many records, so a restart replays only the log "
        "after it (0: not by count).", ge=0, le=1_000_000_000)] = 200000
    snapshot_seconds: Annotated[float, key(
        "A snapshot at most this many seconds after the last one, when records came in "
        "(0: not by time). A clean shutdown always writes one.", ge=0, le=7 * 86400)] = 300.0


class LimitSettings(Section, frozen=True):
    max_body_bytes: Annotated[int, key("Largest request body (bytes).",
                                       ge=256, le=16 * 1024 * 1024)] = 16384
    max_metadata_bytes: Annotated[int, key("Largest metadata of one action (bytes).",
                                           ge=0, le=1024 * 1024)] = 2048
    user_per_minute: Annotated[int, key("Requests per user per minute (0: no limit).",
                                        ge=0, le=100_000_000)] = 600
    ip_per_minute: Annotated[int, key("Requests per client address per minute (0: no limit).",
                                      ge=0, le=100_000_000)] = 3000
    max_batch_actions: Annotated[int, key(
        "Actions in one trusted-backend POST /api/v1/scores/actions/batch.",
        ge=1, le=100_000)] = 1000
    max_batch_body_bytes: Annotated[int, key(
        "The batch endpoint's own body cap (bytes); every other body stays under "
        "max_body_bytes.", ge=256, le=64 * 1024 * 1024)] = 1048576
