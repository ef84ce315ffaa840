"""The metadata database in one SQLite file under the data dir (the default, with no database URL set).

One connection guarded by a lock (see retrieval.sqlite): the server's writes are small and few. WAL mode lets a
reader (a backup, `sqlite3` in a shell) look while the server writes. Opening it applies the migrations it lacks
(orchestrator.db.migrations; `PRAGMA user_version` counts them), then turns foreign keys on.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from orchestrator.db.base import Database
from orchestrator.db.migrations import MIGRATIONS
from retrieval.sqlite import SQLite


class SQLiteDatabase(Database):
    def __init__(self, path: Path) -> None:
        self._file = SQLite(path)
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

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        with self._file.read() as conn:
            yield conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._file.write() as conn:
            yield conn

    def execute(self, sql: str, args: tuple[Any, ...] = ()) -> int:
        with self.read() as conn:
            return conn.execute(sql, args).rowcount

    def close(self) -> None:
        self._file.close()
