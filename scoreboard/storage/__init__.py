"""The action log: one interface (`ActionLog`), three backends, one factory.

`open_store` picks the backend from a database URL; the caller still awaits `open()`.
Each backend is imported when first asked for: a start on SQLite never loads asyncpg,
one on PostgreSQL never loads aiosqlite (every start, a restart too, pays for an import).
"""

from __future__ import annotations

import sys
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard
from urllib.parse import unquote, urlsplit

from scoreboard.storage.base import (
    ActionLog,
    DuplicateAction,
    DuplicateProof,
    StoreError,
    StoreUnavailable,
    WriterFenced,
    WriterLockHeld,
)
from scoreboard.storage.bulk import gc_paused

if TYPE_CHECKING:
    from scoreboard.storage.memory import MemoryLog
    from scoreboard.storage.postgres.log import PostgresLog
    from scoreboard.storage.sqlite import SqliteLog

__all__ = [
    "DEFAULT_SQLITE_FILE",
    "ActionLog",
    "DuplicateAction",
    "DuplicateProof",
    "MemoryLog",
    "PostgresLog",
    "SqliteLog",
    "StoreError",
    "StoreUnavailable",
    "WriterFenced",
    "WriterLockHeld",
    "gc_paused",
    "is_postgres",
    "open_store",
]

DEFAULT_SQLITE_FILE = "scoreboard.db"
_BACKENDS = {
    "MemoryLog": "scoreboard.storage.memory",
    "PostgresLog": "scoreboard.storage.postgres.log",
    "SqliteLog": "scoreboard.storage.sqlite",
}


def __getattr__(name: str) -> Any:
    """`from scoreboard.storage import SqliteLog` and the like, imported on first use."""
    module = _BACKENDS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(module), name)


def is_postgres(store: ActionLog) -> TypeGuard[PostgresLog]:
    """Whether `store` is the PostgreSQL log, without importing it (and asyncpg): no
    store can be one before its module was loaded."""
    module = sys.modules.get(_BACKENDS["PostgresLog"])
    return module is not None and isinstance(store, module.PostgresLog)


def open_store(
    database_url: str | None, data_dir: Path, *, connect_timeout: float = 5.0,
    follower: bool = False, read_only: bool = False,
) -> ActionLog:
    """The (not yet opened) log for a database URL.

    - None, "" or "sqlite://" → SQLite in `<data_dir>/scoreboard.db`
    - "sqlite:///abs/path.db" (or "sqlite:////abs/path.db") → SQLite at that absolute
      path; "sqlite:rel/path.db" → relative to `data_dir`
    - "postgresql://…" or "postgres://…" → PostgreSQL (the URL goes to asyncpg as is)
    - "memory:" → the in-process memory log (tests and demos; nothing persists)

    `connect_timeout` bounds each connection attempt to PostgreSQL. `follower` opens a
    PostgreSQL log without the writer lock (it reads and never writes). `read_only` does
    the same for either backend, beside a running writer (`verify`).

    Raises `ValueError` naming the scheme for anything else.
    """
    url = database_url or "sqlite://"  # the default file in the data folder
    scheme = urlsplit(url).scheme.lower()
    if scheme == "sqlite":
        from scoreboard.storage.sqlite import SqliteLog

        return SqliteLog(_sqlite_path(url, data_dir), read_only=read_only)
    if scheme in ("postgresql", "postgres"):
        from scoreboard.storage.postgres.log import PostgresLog

        return PostgresLog(url, connect_timeout=connect_timeout,
                           follower=follower or read_only)
    if scheme == "memory":
        from scoreboard.storage.memory import MemoryLog

        return MemoryLog()
    raise ValueError(
        f"unsupported database URL scheme {scheme!r} "
        "(use sqlite:///path, postgresql://…, postgres://… or memory:)"
    )


def _sqlite_path(database_url: str, data_dir: Path) -> Path:
    parts = urlsplit(database_url)
    if parts.netloc:
        # sqlite://host/... has no meaning for a local file; refuse rather than guess.
        raise ValueError(
            f"sqlite URL {database_url!r} names a host; use sqlite:///absolute/path.db"
        )
    path = unquote(parts.path)
    if not path.strip("/"):
        return data_dir / DEFAULT_SQLITE_FILE
    if path.startswith("//"):
        path = "/" + path.lstrip("/")  # SQLAlchemy's sqlite:////abs/path spelling
    return data_dir / path  # an absolute path replaces data_dir
