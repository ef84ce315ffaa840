"""Stored files (`file-…`): metadata in the database, bytes through a Blobs backend (orchestrator.services.blobs:
one blob per file under the data dir, or objects in an S3-compatible bucket).

A blob is complete before its row is written, and is deleted if the row cannot be, so a crash leaves either a
complete file or nothing visible.
"""

from __future__ import annotations

import errno
import mimetypes
import re
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from orchestrator.db import Database
from orchestrator.errors import DiskFull, NotFound, TooLarge
from orchestrator.services.blobs import Blobs, LocalBlobs
from orchestrator.services.projects import OverLimit, scope_clause
from retrieval import errors as retrieval_errors
from retrieval.ids import new_file_id
from retrieval.sqlite import PageRequest, keyset_page

_CHUNK = 1 << 20
_DISK_FULL = "The server's disk is full; the file was not stored. Try again once space is freed."
_UNSAFE = re.compile(r"[^\w.\- ()+,@=]")


class FileNotFound(NotFound):
    def __init__(self, file_id: str) -> None:
        super().__init__(f"No such File object: {file_id}")
        self.file_id = file_id


class FileTooLarge(TooLarge):
    code = "file_too_large"

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


def media_type(filename: str) -> str:
    """What a download of `filename` is, by its extension (application/octet-stream when unknown)."""
    return mimetypes.guess_type(filename)[0] or "application/octet-stream"


def safe_filename(name: str) -> str:
    """The last path component with unsafe characters replaced; never empty, never a dot-name."""
    base = _UNSAFE.sub("_", name.replace("\\", "/").split("/")[-1]).strip(" .")
    return base[:255] or "file"


def limit_size(chunks: Iterable[bytes], max_bytes: int | None) -> Iterator[bytes]:
    """Pass `chunks` through, raising FileTooLarge as soon as they add up to more than `max_bytes`."""
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if max_bytes is not None and total > max_bytes:
            raise FileTooLarge(max_bytes)
        yield chunk


class FileStore:
    """Create, read, list and delete stored files. Safe to share between threads."""

    def __init__(self, db: Database, root: Path, byte_limit: Callable[[str], int | None] = lambda _: None,
                 blobs: Blobs | None = None) -> None:
        self._blobs = blobs or LocalBlobs(root / "files")
        self._db = db
        # Each project's limit on stored bytes (None: none).
        self._byte_limit = byte_limit
        self._sweep_partial_blobs()

    def _sweep_partial_blobs(self) -> None:
        """Remove what a killed upload left: a partial blob, or a whole one whose row was never written."""
        self._blobs.sweep(row[0] for row in self._db.all("SELECT id FROM files"))

    @property
    def root(self) -> Path:
        """The local folder the blobs (or, with a bucket, their cache) are kept in."""
        return self._blobs.root

    def blob_path(self, file_id: str) -> Path:
        """A local file with the file's bytes. When local disk is only a cache, FileNotFound once the row is gone
        (another replica may have deleted the file: its cached copy must not be served)."""
        if self._blobs.is_cache and not self.exists(file_id):
            raise FileNotFound(file_id)
        return self._blobs.path(file_id)

    def write(self, source: BinaryIO | Iterable[bytes], filename: str, purpose: str, *, project: str,
              max_bytes: int | None = None) -> StoredFile:
        """Stream `source` to its blob (never whole in memory) and record it as `project`'s; FileTooLarge past
        `max_bytes`, OverLimit if the project would store more than its limit, DiskFull if the disk is."""
        file_id = new_file_id()
        partial = self._blobs.partial(file_id)
        chunks = iter(lambda: source.read(_CHUNK), b"") if hasattr(source, "read") else source
        size = 0
        try:
            try:
                with open(partial, "wb") as out:
                    for chunk in limit_size(chunks, max_bytes):
                        size += len(chunk)
                        out.write(chunk)
            except OSError as exc:
                if exc.errno == errno.ENOSPC:
                    raise DiskFull(_DISK_FULL) from exc
                raise
            record = StoredFile(file_id, safe_filename(filename), purpose, size, int(time.time()))
            # Bytes first, then the row: a kill between the two leaves a blob nobody lists (on local disk, swept at
            # the next start; in a bucket, left: it may be shared), never a listed file without its bytes.
            self._blobs.put(file_id)
            try:
                self._insert(record, project)
            except BaseException as exc:
                self._blobs.delete(file_id)
                if isinstance(exc, retrieval_errors.DiskFull):
                    raise DiskFull(_DISK_FULL) from exc
                raise
        finally:
            partial.unlink(missing_ok=True)
        return record

    def _insert(self, record: StoredFile, project: str) -> None:
        with self._db.transaction() as conn:
            self._check_room(conn, project, record.bytes, "this file")
            conn.execute("INSERT INTO files (id, filename, purpose, bytes, created_at, seq) VALUES (?, ?, ?, ?, ?, "
                         "(SELECT COALESCE(MAX(seq), 0) + 1 FROM files))",
                         (record.id, record.filename, record.purpose, record.bytes, record.created_at))
            conn.execute("INSERT INTO owners (id, project) VALUES (?, ?)", (record.id, project))

    def check_room(self, project: str, adding: int, what: str) -> None:
        """OverLimit (a 429) if `adding` more bytes would take the project past its stored-bytes limit."""
        with self._db.read() as conn:
            self._check_room(conn, project, adding, what)

    def _check_room(self, conn: sqlite3.Connection, project: str, adding: int, what: str) -> None:
        limit = self._byte_limit(project)
        if limit is None:
            return
        # Files, and the messages of the project's threads: a thread is as much stored data as a file is.
        used = conn.execute(
            "SELECT CAST((SELECT COALESCE(SUM(bytes), 0) FROM files WHERE id IN "
            "(SELECT id FROM owners WHERE project = ?))"
            " + (SELECT COALESCE(SUM(LENGTH(body)), 0) FROM messages WHERE thread_id IN "
            "(SELECT id FROM owners WHERE project = ?)) AS BIGINT)", (project, project)).fetchone()[0]
        if used + adding > limit:
            raise OverLimit(f"Project '{project}' may store {limit} bytes of files and messages; it stores {used}, "
                            f"and {what} has {adding}. Delete files or threads to make room.")

    def exists(self, file_id: str) -> bool:
        return self._db.one("SELECT 1 FROM files WHERE id = ?", (file_id,)) is not None

    def get(self, file_id: str) -> StoredFile:
        row = self._db.one("SELECT id, filename, purpose, bytes, created_at FROM files WHERE id = ?", (file_id,))
        if row is None:
            raise FileNotFound(file_id)
        return StoredFile(*row)

    def page(self, page: PageRequest, *, scope: str | None,
             purpose: str | None = None) -> tuple[list[StoredFile], bool]:
        """One page of files in creation order (one project's when `scope` names it); returns (files, has_more)."""
        owned, args = scope_clause(scope)
        where = f"{owned} AND purpose = ?" if purpose else owned
        with self._db.read() as conn:
            rows, has_more = keyset_page(conn, page, select="id, filename, purpose, bytes, created_at", table="files",
                                         where=where, args=(*args, purpose) if purpose else args)
        return [StoredFile(*row) for row in rows], has_more

    def delete(self, file_id: str) -> None:
        """Forget the file and free its bytes."""
        if not self._db.execute("DELETE FROM files WHERE id = ?", (file_id,)):
            raise FileNotFound(file_id)
        self._blobs.delete(file_id)
