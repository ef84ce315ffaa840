"""The metadata database every store of the server shares: SQLite in the data dir by default (orchestrator.db.
sqlite), PostgreSQL when a database URL is set (orchestrator.db.postgres); `open_database` chooses.

Both answer the interface of orchestrator.db.base.Database (the type stores are written against), with the same
schema (orchestrator.db.migrations, orchestrator.db.pg_migrations) and the same SQL text per statement.
"""

from __future__ import annotations

from pathlib import Path

from orchestrator.config import Settings
from orchestrator.db.base import Database, IntegrityError
from orchestrator.db.sqlite import SQLiteDatabase
from retrieval.sqlite import PageRequest

__all__ = ["Database", "IntegrityError", "PageRequest", "open_database"]

SQLITE_FILE = "toolshed.db"
Database.by_path = SQLiteDatabase


def open_database(settings_or_url: Settings | str, data_dir: Path | None = None) -> Database:
    """PostgreSQL at the URL (the settings' `database_url`) when there is one, else the SQLite file in
    `data_dir` (the settings' data dir); either is upgraded to the current schema first."""
    if isinstance(settings_or_url, Settings):
        url, data_dir = settings_or_url.database_url, data_dir or settings_or_url.data_dir
    else:
        url = settings_or_url
    if url:
        from orchestrator.db.postgres import PostgresDatabase  # psycopg is loaded only when it is used

        return PostgresDatabase(url)
    if data_dir is None:
        raise ValueError("a SQLite database needs the data dir it lives in")
    return Database(data_dir / SQLITE_FILE)
