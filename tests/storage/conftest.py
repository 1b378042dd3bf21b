"""The contract suite's backends (memory, SQLite, PostgreSQL) for every file here."""

from tests.storage.test_contract import backend, store  # noqa: F401 (fixtures)
