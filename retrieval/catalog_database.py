"""Where the retrieval catalog's rows live: the SQLite file under the engine's root (the default), or PostgreSQL
tables that replicas share when the engine is given a database URL."""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

from retrieval.catalog_schema import PG_SCHEMA, SCHEMA
from retrieval.sqlite import SQLite


class CatalogDatabase(Protocol):
    """Where the catalog's rows live: SQLite's file, or PostgreSQL. Connections answer sqlite3's calls."""

    shared: bool  # other replicas, with data dirs of their own, write the same rows
    json_texts: str

    def read(self) -> AbstractContextManager[Any]: ...

    def write(self) -> AbstractContextManager[Any]: ...

    def close(self) -> None: ...


def open_database(root: Path, database_url: str = "") -> CatalogDatabase:
    """PostgreSQL's tables when a URL is given, else the SQLite file under `root`."""
    if database_url:
        from retrieval.postgres import PostgresCatalogDatabase  # psycopg only for those who use it

        return PostgresCatalogDatabase(database_url, PG_SCHEMA)
    db = SQLite(root / "retrieval.db", reader=True)  # searches must not wait for ingestion's transactions
    db.executescript(SCHEMA)
    return db
