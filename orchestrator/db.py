"""The metadata database: one SQLite file under the data dir, shared by every store of the server.

One connection guarded by a lock (see retrieval.sqlite): the server's writes are small and few. WAL mode lets a
reader (a backup, `sqlite3` in a shell) look while the server writes.
"""

from __future__ import annotations

from typing import Any

from retrieval.sqlite import SQLite


class Database(SQLite):
    def migrate(self, schema: str) -> None:
        """Create a store's tables if they are missing (every statement must be IF NOT EXISTS)."""
        with self.read() as conn:
            conn.executescript(schema)

    def execute(self, sql: str, args: tuple[Any, ...] = ()) -> int:
        """Run one statement; returns the number of rows it changed."""
        with self.read() as conn:
            return conn.execute(sql, args).rowcount

    def all(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self.read() as conn:
            return conn.execute(sql, args).fetchall()

    def one(self, sql: str, args: tuple[Any, ...] = ()) -> tuple[Any, ...] | None:
        with self.read() as conn:
            return conn.execute(sql, args).fetchone()

    transaction = SQLite.write
