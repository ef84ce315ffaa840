"""What every store uses of the metadata database, whichever engine holds it: `read()` and `transaction()` lend a
connection, `execute/all/one` run one statement, `version` counts the migrations applied, `close()` ends it.

Statements are one SQL text for both engines: `?` placeholders, and only what SQLite and PostgreSQL both accept
(`INSERT ... ON CONFLICT`, `COALESCE`, `CAST(... AS BIGINT)`, `1 = 1` for "every row"). The connection a store is
lent answers sqlite3's calls (`execute`/`executemany`, then `fetchone`/`fetchall`/`rowcount`).
"""

from __future__ import annotations

import sqlite3
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, ClassVar


class IntegrityError(sqlite3.IntegrityError):
    """A constraint refused a write on PostgreSQL. A subclass of sqlite3's, so a store that catches a constraint
    (one live run per thread) catches it from either engine."""


class Database:
    """The metadata database. `Database(path)` is the SQLite file at `path`, as it always was; `open_database`
    chooses the engine from the settings."""

    # The engine `Database(path)` opens: SQLiteDatabase, set by orchestrator.db (so this module, which the
    # engines import, imports none of them).
    by_path: ClassVar[type[Database]]

    def __new__(cls, *args: Any, **kwargs: Any) -> Database:
        return super().__new__(Database.by_path if cls is Database else cls)

    def __init__(self, path: Path) -> None:
        raise NotImplementedError  # SQLiteDatabase and PostgresDatabase each open their own

    @property
    def version(self) -> int:
        """How many migrations the database has had."""
        raise NotImplementedError

    def read(self) -> AbstractContextManager[Any]:
        """A connection for reads and single autocommitted writes. Typed Any: the stores were written against
        sqlite3.Connection, and PostgreSQL's wrapper answers the same calls."""
        raise NotImplementedError

    def transaction(self) -> AbstractContextManager[Any]:
        """A connection in one transaction: everything inside commits together or not at all. Writers take
        turns, as they do on SQLite: a read-then-write inside sees no other writer's change in between."""
        raise NotImplementedError

    def execute(self, sql: str, args: tuple[Any, ...] = ()) -> int:
        """Run one statement; returns the number of rows it changed."""
        raise NotImplementedError

    def all(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self.read() as conn:
            rows: list[tuple[Any, ...]] = conn.execute(sql, args).fetchall()
            return rows

    def one(self, sql: str, args: tuple[Any, ...] = ()) -> tuple[Any, ...] | None:
        with self.read() as conn:
            row: tuple[Any, ...] | None = conn.execute(sql, args).fetchone()
            return row

    def hold_name(self, name: str) -> None:
        """Claim `name` (a server's TOOLSHED_NAMESPACE) while this database is open: on a database replicas
        share, Unavailable if a live server already holds it. A SQLite file has one server, so nothing to do."""

    def close(self) -> None:
        raise NotImplementedError

