"""The metadata database: one SQLite file under the data dir, shared by every store of the server.

One connection guarded by a lock (see retrieval.sqlite): the server's writes are small and few. WAL mode lets a
reader (a backup, `sqlite3` in a shell) look while the server writes. Opening it applies the migrations it lacks
(orchestrator.db.migrations), then turns foreign keys on.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from orchestrator.db.migrations import MIGRATIONS
from retrieval.sqlite import PageRequest, SQLite

__all__ = ["Database", "PageRequest"]


class Database(SQLite):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._upgrade()
        with self.read() as conn:
            conn.execute("PRAGMA foreign_keys = ON")

    @property
    def version(self) -> int:
        return int(self.one("PRAGMA user_version")[0])  # type: ignore[index]

    def _upgrade(self) -> None:
        with self.read() as conn:
            for number in range(self.version + 1, len(MIGRATIONS) + 1):
                # One transaction per migration: it lands whole with its version number, or not at all.
                try:
                    conn.executescript(f"BEGIN IMMEDIATE;\n{MIGRATIONS[number - 1]}\n"
                                       f"PRAGMA user_version = {number};\nCOMMIT;")
                except sqlite3.Error:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise

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
