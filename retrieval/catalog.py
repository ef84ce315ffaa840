"""The retrieval database: vector stores, their files and batches, chunks, cached embeddings, and keyword rows.

One SQLite file (WAL) per engine, or PostgreSQL tables that replicas share (retrieval.postgres). Chunk rows and
their vectors are the source of truth; the FAISS checkpoint is a cache of them (see vector_store.py), so a crash
at any point loses at most work that was never committed. One SQL text serves both databases.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Collection
from contextlib import AbstractContextManager
from typing import Any

from retrieval.catalog_database import CatalogDatabase
from retrieval.embedding import content_hash
from retrieval.errors import BatchNotFound, DiskFull, StoreFileNotFound, StoreNotFound
from retrieval.fusion import Fused
from retrieval.ids import new_id
from retrieval.models import (
    Batch,
    Chunk,
    ChunkingStrategy,
    FileCounts,
    FileError,
    Hit,
    IndexedChunk,
    Store,
    StoreFile,
)
from retrieval.sqlite import PageRequest, keyset_page

_FILE_COLUMNS = ("store_id, file_id, filename, status, created_at, usage_bytes, attributes, chunking, error_code, "
                 "error_message, batch_id")
_TOUCH_EVERY = 60.0
_STORE_COLUMNS = "id, name, created_at, last_active_at, metadata, expires_after_days, description, key"


class Catalog:
    def __init__(self, db: CatalogDatabase) -> None:
        self._db = db
        self.shared = db.shared
        self._touched: dict[str, float] = {}

    def read(self) -> AbstractContextManager[Any]:
        return self._db.read()

    def write(self) -> AbstractContextManager[Any]:
        """One transaction, writers taking turns (across replicas too); DiskFull if the disk is full."""
        return self._db.write()

    def close(self) -> None:
        self._db.close()

    # ---- stores --------------------------------------------------------------------------------------------

    def create_store(self, name: str, metadata: dict[str, str], expires_after_days: int | None,
                     description: str | None) -> str:
        store_id = new_id("vs_")
        now = int(time.time())
        with self.write() as conn:
            conn.execute("INSERT INTO stores (id, name, description, created_at, last_active_at, metadata, "
                         "expires_after_days) VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (store_id, name, description, now, now, json.dumps(metadata), expires_after_days))
        return store_id

    def store_key(self, store_id: str) -> int:
        with self.read() as conn:
            row = conn.execute("SELECT key FROM stores WHERE id = ?", (store_id,)).fetchone()
        if row is None:
            raise StoreNotFound(store_id)
        return int(row[0])

    def has_stores(self) -> bool:
        with self.read() as conn:
            return conn.execute("SELECT 1 FROM stores LIMIT 1").fetchone() is not None

    def store(self, store_id: str) -> Store:
        with self.read() as conn:
            row = conn.execute(f"SELECT {_STORE_COLUMNS} FROM stores WHERE id = ?", (store_id,)).fetchone()
            if row is None:
                raise StoreNotFound(store_id)
            return self._store_of(conn, row)

    def stores(self, name: str | None = None) -> list[Store]:
        """Every store, oldest first (optionally only those called `name`)."""
        with self.read() as conn:
            sql = f"SELECT {_STORE_COLUMNS} FROM stores" + (" WHERE name = ?" if name is not None else "")
            rows = conn.execute(sql + " ORDER BY key", (name,) if name is not None else ()).fetchall()
            return [self._store_of(conn, row) for row in rows]

    def store_page(self, page: PageRequest, only: Collection[str] | None = None) -> tuple[list[Store], bool]:
        """One page of stores; of those whose ids are in `only` when given."""
        where = "1 = 1" if only is None else f"id IN ({self._db.json_texts})"
        with self.read() as conn:
            rows, has_more = keyset_page(conn, page, select=_STORE_COLUMNS, table="stores", seq="key", where=where,
                                         args=() if only is None else (json.dumps(list(only)),))
            return [self._store_of(conn, row) for row in rows], has_more

    def _store_of(self, conn: Any, row: tuple[Any, ...]) -> Store:
        counts, usage = self._counts(conn, "store_id", row[0])
        # `or`: rows written before updates were validated may hold a null name or "null" metadata.
        return Store(id=row[0], name=row[1] or "", created_at=row[2], last_active_at=row[3], usage_bytes=usage,
                     file_counts=counts, metadata=json.loads(row[4] or "null") or {}, expires_after_days=row[5],
                     description=row[6])

    @staticmethod
    def _counts(conn: Any, column: str, value: str) -> tuple[FileCounts, int]:
        # CAST: PostgreSQL sums BIGINTs as NUMERIC, which would come back as Decimal.
        rows = conn.execute(f"SELECT status, COUNT(*), CAST(SUM(usage_bytes) AS BIGINT) FROM store_files "
                            f"WHERE {column} = ? GROUP BY status", (value,)).fetchall()
        counts = {status: count for status, count, _ in rows}
        return FileCounts(**{s: counts.get(s, 0) for s in ("in_progress", "completed", "failed", "cancelled")}), \
            sum(usage or 0 for _, _, usage in rows)

    def update_store(self, store_id: str, **fields: Any) -> None:
        if "metadata" in fields:
            fields["metadata"] = json.dumps(fields["metadata"])
        assignments = ", ".join(f"{column} = ?" for column in fields)
        with self.write() as conn:
            if conn.execute(f"UPDATE stores SET {assignments} WHERE id = ?", (*fields.values(), store_id)).rowcount \
                    == 0:
                raise StoreNotFound(store_id)

    def touch(self, store_id: str) -> None:
        """Note the store's use (its expiry counts from it, in days); on a full disk the search answers all the
        same. At most once a minute per store: each note is a write, and it would wait for ingestion's."""
        now = time.monotonic()
        if now - self._touched.get(store_id, -_TOUCH_EVERY) < _TOUCH_EVERY:
            return
        self._touched[store_id] = now
        # On PostgreSQL one autocommitted UPDATE: it hands out no ids, so it need not queue among the writers.
        with contextlib.suppress(DiskFull), (self.read() if self.shared else self.write()) as conn:
            conn.execute("UPDATE stores SET last_active_at = ? WHERE id = ?", (int(time.time()), store_id))

    # ---- files ---------------------------------------------------------------------------------------------

    def attach(self, store_id: str, file_id: str, filename: str, attributes: dict[str, Any],
               chunking: ChunkingStrategy, batch_id: str | None) -> StoreFile:
        """Record a file as `in_progress` (again, if it had failed or been cancelled); an indexed file is kept."""
        self.store_key(store_id)
        with self.write() as conn:
            row = conn.execute("SELECT status FROM store_files WHERE store_id = ? AND file_id = ?",
                               (store_id, file_id)).fetchone()
            if row is None or row[0] in ("failed", "cancelled"):
                conn.execute("DELETE FROM store_files WHERE store_id = ? AND file_id = ?", (store_id, file_id))
                conn.execute(
                    "INSERT INTO store_files (store_id, file_id, filename, status, created_at, attributes, chunking, "
                    "batch_id) VALUES (?, ?, ?, 'in_progress', ?, ?, ?, ?)",
                    (store_id, file_id, filename, int(time.time()), json.dumps(attributes),
                     json.dumps(chunking.__dict__), batch_id))
            elif batch_id is not None:
                conn.execute("UPDATE store_files SET batch_id = ? WHERE store_id = ? AND file_id = ?",
                             (batch_id, store_id, file_id))
        return self.file(store_id, file_id)

    def file(self, store_id: str, file_id: str) -> StoreFile:
        with self.read() as conn:
            row = conn.execute(f"SELECT {_FILE_COLUMNS} FROM store_files WHERE store_id = ? AND file_id = ?",
                               (store_id, file_id)).fetchone()
        if row is None:
            raise StoreFileNotFound(store_id, file_id)
        return _file_of(row)

    def chunk_ids(self, store_id: str, file_ids: list[str]) -> set[int]:
        """The ids of these files' chunks in a store."""
        with self.read() as conn:  # one JSON argument, however many files: SQLite caps bound parameters
            rows = conn.execute(f"SELECT id FROM chunks WHERE store_id = ? AND file_id IN ({self._db.json_texts})",
                                (store_id, json.dumps(file_ids)))
            return {row[0] for row in rows}

    def hits(self, ranked: list[Fused]) -> list[Hit]:
        """Ranked chunks as hits: their text, file and page (a chunk deleted meanwhile is left out)."""
        if not ranked:
            return []
        with self.read() as conn:
            rows = {row[0]: row for row in conn.execute(
                "SELECT c.id, c.file_id, f.filename, c.text, c.page, f.attributes FROM chunks c JOIN store_files f "
                f"ON f.store_id = c.store_id AND f.file_id = c.file_id WHERE c.id IN ({','.join('?' * len(ranked))})",
                [hit.chunk_id for hit in ranked])}
        return [Hit(hit.chunk_id, row[1], row[2], hit.score, row[3], row[4], json.loads(row[5]), hit.dense, hit.keyword)
                for hit in ranked if (row := rows.get(hit.chunk_id)) is not None]

    def stores_with_file(self, file_id: str) -> list[str]:
        with self.read() as conn:
            return [row[0] for row in conn.execute("SELECT DISTINCT store_id FROM store_files WHERE file_id = ?",
                                                   (file_id,))]

    def files(self, store_id: str, *, status: str | None = None, batch_id: str | None = None) -> list[StoreFile]:
        """A store's files, oldest first."""
        where, args = _file_filter(store_id, status, batch_id)
        with self.read() as conn:
            rows = conn.execute(f"SELECT {_FILE_COLUMNS} FROM store_files WHERE {where} ORDER BY seq", args)
            return [_file_of(row) for row in rows.fetchall()]

    def file_page(self, store_id: str, page: PageRequest, *, status: str | None = None,
                  batch_id: str | None = None) -> tuple[list[StoreFile], bool]:
        """One page of a store's files (of one status, of one batch) in attachment order."""
        where, args = _file_filter(store_id, status, batch_id)
        with self.read() as conn:
            rows, has_more = keyset_page(conn, page, select=_FILE_COLUMNS, table="store_files", where=where,
                                         args=args, cursor_column="file_id")
        return [_file_of(row) for row in rows], has_more

    def chunk_count(self, store_id: str, file_id: str | None = None) -> int:
        """A store's chunks, or one file's."""
        sql, args = "SELECT COUNT(*) FROM chunks WHERE store_id = ?", [store_id]
        if file_id is not None:
            sql, args = sql + " AND file_id = ?", [store_id, file_id]
        with self.read() as conn:
            return int(conn.execute(sql, args).fetchone()[0])

    def chunks(self, store_id: str, file_id: str) -> list[IndexedChunk]:
        """The indexed chunks of a file, in order."""
        self.file(store_id, file_id)
        with self.read() as conn:
            rows = conn.execute("SELECT id, text, page, start, \"end\", tokens FROM chunks WHERE store_id = ? AND "
                                "file_id = ? ORDER BY ordinal", (store_id, file_id)).fetchall()
        return [IndexedChunk(row[0], Chunk(*row[1:])) for row in rows]

    def pending(self) -> list[StoreFile]:
        """Files still `in_progress`, across all stores, in the order they were attached."""
        with self.read() as conn:
            rows = conn.execute(f"SELECT {_FILE_COLUMNS} FROM store_files WHERE status = 'in_progress' "
                                "ORDER BY seq").fetchall()
        return [_file_of(row) for row in rows]

    def set_status(self, conn: Any, store_id: str, file_id: str, status: str,
                   error: FileError | None = None, usage_bytes: int = 0) -> None:
        """End an `in_progress` file; one that already ended (indexed, cancelled) keeps its status."""
        conn.execute("UPDATE store_files SET status = ?, error_code = ?, error_message = ?, usage_bytes = ? "
                     "WHERE store_id = ? AND file_id = ? AND status = 'in_progress'",
                     (status, error.code if error else None, error.message if error else None, usage_bytes,
                      store_id, file_id))

    @staticmethod
    def insert_chunk(conn: Any, store_id: str, file_id: str, ordinal: int, chunk: Chunk) -> int:
        """Insert one chunk row inside the caller's write transaction; returns its id."""
        row = conn.execute(
            "INSERT INTO chunks (store_id, file_id, ordinal, page, start, \"end\", tokens, hash, text) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (store_id, file_id, ordinal, chunk.page, chunk.start, chunk.end, chunk.tokens, content_hash(chunk.text),
             chunk.text)).fetchone()
        return int(row[0])

    # ---- batches -------------------------------------------------------------------------------------------

    def create_batch(self, store_id: str) -> str:
        batch_id = new_id("vsfb_")
        with self.write() as conn:
            conn.execute("INSERT INTO batches (id, store_id, created_at) VALUES (?, ?, ?)",
                         (batch_id, store_id, int(time.time())))
        return batch_id

    def cancel_batch(self, store_id: str, batch_id: str) -> None:
        self.batch(store_id, batch_id)
        with self.write() as conn:
            conn.execute("UPDATE batches SET cancelled = 1 WHERE id = ?", (batch_id,))
            conn.execute("UPDATE store_files SET status = 'cancelled' WHERE batch_id = ? AND status = 'in_progress'",
                         (batch_id,))

    def batch(self, store_id: str, batch_id: str) -> Batch:
        with self.read() as conn:
            row = conn.execute("SELECT id, store_id, created_at, cancelled FROM batches WHERE id = ? AND "
                               "store_id = ?", (batch_id, store_id)).fetchone()
            if row is None:
                raise BatchNotFound(store_id, batch_id)
            counts, _ = self._counts(conn, "batch_id", batch_id)
        return Batch(row[0], row[1], row[2], counts, bool(row[3]))


def _file_filter(store_id: str, status: str | None, batch_id: str | None) -> tuple[str, tuple[str, ...]]:
    """The WHERE clause (and its arguments) for a store's files, of one status and one batch when given."""
    given = {column: value for column, value in (("store_id", store_id), ("status", status), ("batch_id", batch_id))
             if value is not None}
    return " AND ".join(f"{column} = ?" for column in given), tuple(given.values())


def _file_of(row: tuple[Any, ...]) -> StoreFile:
    error = FileError(row[8], row[9]) if row[8] else None
    return StoreFile(store_id=row[0], file_id=row[1], filename=row[2], status=row[3], created_at=row[4],
                     usage_bytes=row[5], attributes=json.loads(row[6]), chunking=ChunkingStrategy(**json.loads(row[7])),
                     error=error, batch_id=row[10])
