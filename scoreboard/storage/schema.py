"""The SQL schema, written once: tables, columns, indexes, migrations and the statements
both SQL backends run.

Columns carry a portable type; each backend is a `Dialect` that says how it spells
those types and its parameters, and its DDL and statements are derived from here. A
schema change is a new version: columns added in it say `since=` that version, and
`migrations()` turns them into `ALTER TABLE` statements for databases made before.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

from scoreboard.storage.base import StoreUnavailable

SCHEMA_VERSION = 6


class ColumnType(Enum):
    INT = "a 64-bit integer"
    REAL = "a double"
    TEXT = "UTF-8 text"
    JSON = "JSON text"
    BOOL = "a boolean"
    BYTES = "a byte string"


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: ColumnType
    required: bool = False  # NOT NULL
    since: int = 1  # the schema version that added it


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    since: int = 1  # the schema version that added it

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def column_list(self) -> str:
        return ", ".join(self.column_names)


@dataclass(frozen=True, slots=True)
class Dialect:
    """How one database spells the portable types and numbers its parameters."""

    types: Mapping[ColumnType, str]
    numbered_params: bool  # $1, $2 … (PostgreSQL); else ? in order (SQLite)
    # The archive's tables live in a database of their own (SQLite: a file beside the
    # log's, so that writing an archive never holds the log's one write lock).
    archive_apart: bool = False
    # Statements of one database only, as (schema version, statement).
    own_steps: tuple[tuple[int, str], ...] = ()

    def params(self, count: int, first: int = 1) -> list[str]:
        if self.numbered_params:
            return [f"${i}" for i in range(first, first + count)]
        return ["?"] * count


INT, REAL, TEXT, JSON, BOOL, BYTES = (
    ColumnType.INT, ColumnType.REAL, ColumnType.TEXT, ColumnType.JSON, ColumnType.BOOL,
    ColumnType.BYTES,
)
SQLITE = Dialect(
    {INT: "INTEGER", REAL: "REAL", TEXT: "TEXT", JSON: "TEXT", BOOL: "INTEGER",
     BYTES: "BLOB"},
    numbered_params=False,
    archive_apart=True,
)
POSTGRES = Dialect(
    {INT: "BIGINT", REAL: "DOUBLE PRECISION", TEXT: "TEXT", JSON: "JSONB", BOOL: "BOOLEAN",
     BYTES: "BYTEA"},
    numbered_params=True,
    # A snapshot's body is zlib already: stored out of line as it is, without TOAST's
    # pglz pass over megabytes on every write and its decompression on every read
    # (pglz did halve a 6.4 MB level-1 body, and reading it back took 32 ms instead of
    # 18). Rows written before keep their form until they are replaced.
    own_steps=((6, "ALTER TABLE snapshots ALTER COLUMN body SET STORAGE EXTERNAL"),),
)

# -- tables ------------------------------------------------------------------------------

ACTION_LOG = Table("action_log", (
    Column("seq", INT, required=True), Column("at", REAL, required=True),
    Column("board", TEXT, required=True), Column("user_id", TEXT, required=True),
    Column("kind", TEXT, required=True),
    Column("action_type", TEXT), Column("client_action_id", TEXT),
    Column("delta", INT, required=True), Column("prev_score", INT, required=True),
    Column("new_score", INT, required=True),
    Column("display_name", TEXT), Column("metadata", JSON),
    Column("actor", TEXT), Column("reason", TEXT),
    Column("proof_jti", TEXT), Column("proof_exp", REAL),
    # ActionRecord.also: [[board, prev_score, new_score], …] on the boards that follow
    Column("also", JSON, since=5),
), primary_key=("seq",))
BOARD_SCORES = Table("board_scores", (
    Column("board", TEXT, required=True), Column("user_id", TEXT, required=True),
    Column("score", INT, required=True), Column("reached_seq", INT, required=True),
), primary_key=("board", "user_id"))
USERS = Table("users", (
    Column("user_id", TEXT, required=True), Column("display_name", TEXT),
    Column("frozen", BOOL, required=True), Column("hidden", BOOL, required=True),
    Column("flag", TEXT, since=2),  # UserRow.flag (abuse monitor)
    Column("tokens_revoked_at", REAL, since=3),  # UserRow.tokens_revoked_at (revocation)
), primary_key=("user_id",))
TABLES = (ACTION_LOG, BOARD_SCORES, USERS)
# Copies of the engine's state at one seq (`scoreboard.storage.snapshots`); only the
# newest few are kept.
SNAPSHOTS = Table("snapshots", (
    Column("seq", INT, required=True), Column("created_at", REAL, required=True),
    Column("format", TEXT, required=True), Column("checksum", TEXT, required=True),
    Column("body", BYTES, required=True),
), primary_key=("seq",), since=4)
# Closed periods' final standings (SPEC §11), written after their period_closed record
# by the archiver: a function of the log, rebuilt from it when incomplete.
ARCHIVE = Table("archive", (
    Column("board", TEXT, required=True), Column("period", TEXT, required=True),
    Column("position", INT, required=True),  # 1, 2, 3 … in the standings' order
    Column("user_id", TEXT, required=True), Column("score", INT, required=True),
    Column("rank", INT, required=True),  # as it stood: equal under competition ranks
), primary_key=("board", "period", "user_id"), since=5)
PERIODS = Table("periods", (
    Column("board", TEXT, required=True), Column("period", TEXT, required=True),
    Column("starts_at", REAL), Column("ends_at", REAL),  # NULL: unbounded
    Column("total_users", INT, required=True),
    Column("closed_seq", INT, required=True),  # the seq of its period_closed record
    Column("complete", BOOL, required=True),  # every archive row is written
), primary_key=("board", "period"), since=5)
# Tables a schema version after the first added.
LATER_TABLES = (SNAPSHOTS, ARCHIVE, PERIODS)
ARCHIVE_TABLES = (ARCHIVE, PERIODS)
ARCHIVE_INDEXES = (
    "CREATE UNIQUE INDEX archive_position ON archive (board, period, position)",
    "CREATE INDEX periods_closed ON periods (board, closed_seq)",
)

# The same in both dialects: partial indexes keep the unique guards to the rows that
# have a key or a proof.
_INDEXES = (
    """CREATE UNIQUE INDEX action_log_action_key ON action_log (user_id, client_action_id)
        WHERE client_action_id IS NOT NULL""",
    """CREATE UNIQUE INDEX action_log_proof_jti ON action_log (proof_jti)
        WHERE proof_jti IS NOT NULL""",
    "CREATE INDEX action_log_user_seq ON action_log (user_id, seq)",
    "CREATE INDEX action_log_at ON action_log (at)",
    # Lets recovery find unexpired proofs without scanning the whole log.
    "CREATE INDEX action_log_proof_exp ON action_log (proof_exp) WHERE proof_exp IS NOT NULL",
)


# Statements of later versions beyond their added columns.
_LATER: dict[int, tuple[str, ...]] = {
    # Recovery finds each board's last period_closed without scanning the log.
    5: ("""CREATE INDEX action_log_period_closed ON action_log (board, seq)
        WHERE kind = 'period_closed'""",
        # and every run-time board definition and standing removal.
        """CREATE INDEX action_log_board_admin ON action_log (seq)
        WHERE kind IN ('board_defined', 'standing_removed')"""),
    # The archiver's catch-up at every start (closes without a complete archive, and
    # every exclusion) reads these few records in seq order instead of the whole log:
    # on SQLite that scan also held the one reading connection, and so readiness, for
    # seconds with ten million records.
    6: ("""CREATE INDEX action_log_closes ON action_log (seq)
        WHERE kind = 'period_closed'""",
        """CREATE INDEX action_log_exclusions ON action_log (seq)
        WHERE kind = 'period_exclusion'"""),
}


def _column_ddl(table: Table, column: Column, dialect: Dialect) -> str:
    ddl = f"{column.name} {dialect.types[column.type]}"
    if table.primary_key == (column.name,):
        return f"{ddl} PRIMARY KEY"  # inline: SQLite's INTEGER PRIMARY KEY is the rowid
    return f"{ddl} NOT NULL" if column.required else ddl


def _create_table(table: Table, dialect: Dialect, within: str = "") -> str:
    parts = [_column_ddl(table, c, dialect) for c in table.columns if c.since <= table.since]
    if len(table.primary_key) > 1:
        parts.append(f"PRIMARY KEY ({', '.join(table.primary_key)})")
    body = ",\n    ".join(parts)
    return f"CREATE TABLE {within}{table.name} (\n    {body}\n)"


def archive_schema(dialect: Dialect, *, within: str | None = None) -> tuple[str, ...]:
    """The archive's tables and indexes (in the log's database unless `archive_apart`);
    `within`: the tables alone, in that attached database (an empty stand-in)."""
    if within is not None:
        return tuple(_create_table(t, dialect, f"{within}.") for t in ARCHIVE_TABLES)
    return (*(_create_table(t, dialect) for t in ARCHIVE_TABLES), *ARCHIVE_INDEXES)


def migrations(dialect: Dialect) -> dict[int, tuple[str, ...]]:
    """Statements per schema version; a database at version N gets N+1.. applied."""
    steps: dict[int, tuple[str, ...]] = {
        1: (*(_create_table(t, dialect) for t in TABLES[:1]), *_INDEXES,
            *(_create_table(t, dialect) for t in TABLES[1:])),
    }
    apart = ARCHIVE_TABLES if dialect.archive_apart else ()
    for version in range(2, SCHEMA_VERSION + 1):
        steps[version] = (*(
            f"ALTER TABLE {t.name} ADD COLUMN {_column_ddl(t, c, dialect)}"
            for t in TABLES for c in t.columns if c.since == version
        ), *(_create_table(t, dialect) for t in LATER_TABLES
             if t.since == version and t not in apart),
            *_LATER.get(version, ()))
    if not dialect.archive_apart:
        steps[5] += ARCHIVE_INDEXES
    else:  # a log made by version 5 kept its archive itself: rebuilt in its own file
        steps[6] += tuple(f"DROP TABLE IF EXISTS {t.name}" for t in ARCHIVE_TABLES)
    for version, statement in dialect.own_steps:
        steps[version] += (statement,)
    return steps


def upgrades(dialect: Dialect, current: int, where: str) -> list[tuple[int, tuple[str, ...]]]:
    """(version, statements) to bring a database at `current` up to date, in order.

    Raises `StoreUnavailable` when the database is newer than this code."""
    if current > SCHEMA_VERSION:
        raise StoreUnavailable(
            f"{where} has schema version {current}; this code knows up to "
            f"{SCHEMA_VERSION}: upgrade the program"
        )
    steps = migrations(dialect)
    return [(v, steps[v]) for v in range(current + 1, SCHEMA_VERSION + 1)]


# -- statements both backends run --------------------------------------------------------

RECORD_COLUMNS = ACTION_LOG.column_names
RECORD_COLUMN_LIST = ACTION_LOG.column_list
LAST_SEQ = "SELECT coalesce(max(seq), 0) FROM action_log"
SELECT_RECORDS = f"SELECT {RECORD_COLUMN_LIST} FROM action_log"
SELECT_SCORES = f"SELECT {BOARD_SCORES.column_list} FROM board_scores"
SELECT_USERS = f"SELECT {USERS.column_list} FROM users"
# Each board's last period_closed record, and every board_defined and standing_removed
# record (an administrator's, so few): what recovery needs of boards, in seq order.
LAST_CLOSES = f"""{SELECT_RECORDS} WHERE seq IN (SELECT max(seq) FROM action_log
    WHERE kind = 'period_closed' GROUP BY board)
    UNION ALL {SELECT_RECORDS} WHERE kind IN ('board_defined', 'standing_removed')
    ORDER BY seq"""
LAST_AT = "SELECT coalesce((SELECT at FROM action_log ORDER BY seq DESC LIMIT 1), 0)"
LIST_SNAPSHOTS = ("SELECT seq, created_at, format, checksum, length(body) FROM snapshots"
                  " ORDER BY seq DESC")
# The newest `keep` stay (the parameter: keep).
PRUNE_SNAPSHOTS = ("DELETE FROM snapshots WHERE seq NOT IN"
                   " (SELECT seq FROM snapshots ORDER BY seq DESC LIMIT {keep})")


def insert(table: Table, rows: str, *, upsert: bool = False, unless: str = "") -> str:
    """Insert full rows from `rows` (a VALUES list or a SELECT); with `upsert`, a row
    whose primary key exists replaces it, except where the stored row meets `unless`."""
    statement = f"INSERT INTO {table.name} ({table.column_list}) {rows}"
    if not upsert:
        return statement
    rest = [c for c in table.column_names if c not in table.primary_key]
    updates = ", ".join(f"{c} = excluded.{c}" for c in rest)
    guard = f" WHERE NOT ({table.name}.{unless})" if unless else ""
    return (f"{statement} ON CONFLICT ({', '.join(table.primary_key)}) "
            f"DO UPDATE SET {updates}{guard}")


@dataclass(frozen=True, slots=True)
class RecordQueries:
    """The record reads whose text differs between backends only in parameters."""

    history: str  # (user_id, limit): newest first
    history_before: str  # (user_id, before_seq, limit)
    scan: str  # (from_seq, limit): in seq order

    @classmethod
    def of(cls, dialect: Dialect) -> RecordQueries:
        p = dialect.params
        user, limit = p(2)
        before_user, before, before_limit = p(3)
        start, count = p(2)
        return cls(
            history=f"{SELECT_RECORDS} WHERE user_id = {user} ORDER BY seq DESC LIMIT {limit}",
            history_before=(
                f"{SELECT_RECORDS} WHERE user_id = {before_user} AND seq < {before}"
                f" ORDER BY seq DESC LIMIT {before_limit}"
            ),
            scan=f"{SELECT_RECORDS} WHERE seq >= {start} ORDER BY seq LIMIT {count}",
        )
