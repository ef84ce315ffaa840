"""Sandbox output kept as Files-API files (`assistants_output`): the files a cell writes and the images it shows.

Each copy lands on the server's disk, outside the sandbox's quota, and outlives the sandbox, so a hostile cell
could fill the host by rewriting one big file again and again. Three bounds stop that: a budget of stored bytes
per sandbox (exported files the user deletes give theirs back), a floor of free space on the data disk, and
content the sandbox already exported under the same name is handed back instead of stored again.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from orchestrator.db import Database
from orchestrator.errors import DiskFull, Unavailable
from orchestrator.services.projects import OverLimit, Owners
from orchestrator.services.storage import FileStore, FileTooLarge

_PURPOSE = "assistants_output"


@dataclass(frozen=True)
class Exported:
    """The stored copy's id, or None and the reason nothing was stored."""

    file_id: str | None
    error: str | None = None


@dataclass(frozen=True)
class ExportLimits:
    budget_bytes: int  # stored export bytes per sandbox
    min_free_bytes: int  # free space the data disk keeps
    max_file_bytes: int  # one export


class Exports:
    def __init__(self, db: Database, files: FileStore, owners: Owners, limits: ExportLimits) -> None:
        self._db = db
        self._files = files
        self._owners = owners
        self._limits = limits

    def used(self, container_id: str) -> int:
        """Bytes of this sandbox's exports that are still stored."""
        row = self._db.one("SELECT CAST(COALESCE(SUM(f.bytes), 0) AS BIGINT) FROM exports e "
                           "JOIN files f ON f.id = e.file_id WHERE e.container_id = ?", (container_id,))
        return int(row[0]) if row else 0

    def store(self, container_id: str, chunks: Iterable[bytes], filename: str, size: int) -> Exported:
        """Copy `size` bytes of output into a new file, unless a bound refuses it (then `error` says which)."""
        room = self._room(container_id, size)
        if isinstance(room, str):
            return Exported(None, f"Not exported: {room}.")
        digest = hashlib.sha256()
        try:
            stored = self._files.write(_hashing(chunks, digest), filename, _PURPOSE, max_bytes=room,
                                       project=self._owners.project_of(container_id))
        except FileTooLarge:
            return Exported(None, "Not exported: it grew past the export limit while it was being copied.")
        except (OverLimit, DiskFull, Unavailable) as exc:  # Unavailable: the bucket does not answer
            return Exported(None, f"Not exported: {exc}")
        except OSError as exc:
            return Exported(None, f"Not exported: the server could not store it ({exc.strerror}).")
        same = self._db.one(
            "SELECT e.file_id FROM exports e JOIN files f ON f.id = e.file_id WHERE e.container_id = ? AND "
            "e.sha256 = ? AND f.filename = ? AND f.bytes = ?",
            (container_id, digest.hexdigest(), stored.filename, stored.bytes))
        if same is not None:
            self._files.delete(stored.id)
            return Exported(same[0])
        self._db.execute("INSERT INTO exports (file_id, container_id, sha256) VALUES (?, ?, ?)",
                         (stored.id, container_id, digest.hexdigest()))
        return Exported(stored.id)

    def _room(self, container_id: str, size: int) -> int | str:
        """The most bytes this export may take, or why it may take none."""
        limits = self._limits
        if size > limits.max_file_bytes:
            return f"{size} bytes is over the {limits.max_file_bytes}-byte export limit"
        left = limits.budget_bytes - self.used(container_id)
        if size > left:
            return (f"this sandbox's export budget of {limits.budget_bytes} bytes has {max(left, 0)} bytes left "
                    "(deleting its exported files frees budget)")
        if shutil.disk_usage(self._files.root).free - size < limits.min_free_bytes:
            return "the server's disk is nearly full"
        return min(left, limits.max_file_bytes)


def _hashing(chunks: Iterable[bytes], digest: hashlib._Hash) -> Iterator[bytes]:
    for chunk in chunks:
        digest.update(chunk)
        yield chunk
