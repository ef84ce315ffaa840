"""Stored files (`file-…`): metadata in SQLite, bytes as one blob per file under the data dir.

Blobs are written to a temporary name and renamed into place only after the row is committed, so a crash leaves
either a complete file or nothing visible.
"""

from __future__ import annotations

import os
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    id TEXT PRIMARY KEY,
    filename TEXT NOT NULL,
    purpose TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    seq INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS files_order ON files (created_at, seq);
"""
_CHUNK = 1 << 20
_UNSAFE = re.compile(r"[^\w.\- ()+,@=]")


class FileNotFound(Exception):
    def __init__(self, file_id: str) -> None:
        super().__init__(f"No such File object: {file_id}")
        self.file_id = file_id


class FileTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"File exceeds the maximum upload size of {limit} bytes.")
        self.limit = limit


@dataclass(frozen=True)
class StoredFile:
    id: str
    filename: str
    purpose: str
    bytes: int
    created_at: int


def safe_filename(name: str) -> str:
    """The last path component with unsafe characters replaced; never empty, never a dot-name."""
    base = _UNSAFE.sub("_", name.replace("\\", "/").split("/")[-1]).strip(" .")
    return base[:255] or "file"


class FileStore:
    """Create, read, list and delete stored files. Safe to share between threads."""

    def __init__(self, root: Path) -> None:
        self._blobs = root / "files"
        self._blobs.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(root / "toolshed.db", check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()
        self._sweep_partial_blobs()

    def _sweep_partial_blobs(self) -> None:
        for partial in self._blobs.glob("*.part"):
            partial.unlink(missing_ok=True)

    def blob_path(self, file_id: str) -> Path:
        return self._blobs / file_id

    def write(self, source: BinaryIO | Iterable[bytes], filename: str, purpose: str,
              max_bytes: int | None = None) -> StoredFile:
        """Stream `source` to disk (never whole in memory) and record it; FileTooLarge past `max_bytes`."""
        file_id = f"file-{secrets.token_urlsafe(18).replace('-', 'A').replace('_', 'B')}"
        partial = self._blobs / f"{file_id}.part"
        chunks = iter(lambda: source.read(_CHUNK), b"") if hasattr(source, "read") else source
        size = 0
        try:
            with open(partial, "wb") as out:
                for chunk in chunks:
                    size += len(chunk)
                    if max_bytes is not None and size > max_bytes:
                        raise FileTooLarge(max_bytes)
                    out.write(chunk)
            record = StoredFile(file_id, safe_filename(filename), purpose, size, int(time.time()))
            self._insert(record)
            os.replace(partial, self.blob_path(file_id))
        finally:
            partial.unlink(missing_ok=True)
        return record

    def _insert(self, record: StoredFile) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO files (id, filename, purpose, bytes, created_at, seq) VALUES (?, ?, ?, ?, ?, "
                "(SELECT COALESCE(MAX(seq), 0) + 1 FROM files))",
                (record.id, record.filename, record.purpose, record.bytes, record.created_at),
            )

    def get(self, file_id: str) -> StoredFile:
        with self._lock:
            row = self._db.execute(
                "SELECT id, filename, purpose, bytes, created_at FROM files WHERE id = ?", (file_id,)
            ).fetchone()
        if row is None:
            raise FileNotFound(file_id)
        return StoredFile(*row)

    def list(self, *, purpose: str | None = None, after: str | None = None, limit: int = 10000,
             order: Literal["asc", "desc"] = "desc") -> tuple[list[StoredFile], bool]:
        """One page of files in creation order; returns (files, has_more)."""
        where, args = [], []
        if purpose:
            where.append("purpose = ?")
            args.append(purpose)
        if after:
            anchor = self._db.execute("SELECT seq FROM files WHERE id = ?", (after,)).fetchone()
            if anchor is None:
                raise FileNotFound(after)
            where.append("seq < ?" if order == "desc" else "seq > ?")
            args.append(anchor[0])
        sql = "SELECT id, filename, purpose, bytes, created_at FROM files"
        sql += (" WHERE " + " AND ".join(where)) if where else ""
        sql += f" ORDER BY seq {'DESC' if order == 'desc' else 'ASC'} LIMIT ?"
        with self._lock:
            rows = self._db.execute(sql, (*args, limit + 1)).fetchall()
        return [StoredFile(*r) for r in rows[:limit]], len(rows) > limit

    def delete(self, file_id: str) -> None:
        """Forget the file and free its bytes."""
        with self._lock:
            deleted = self._db.execute("DELETE FROM files WHERE id = ?", (file_id,)).rowcount
        if not deleted:
            raise FileNotFound(file_id)
        self.blob_path(file_id).unlink(missing_ok=True)

    def close(self) -> None:
        self._db.close()
