"""Container files (`cfile_…`): the files under a sandbox's /mnt/data, as the Containers API sees them.

The bytes live on the sandbox's host (sandbox.host.SandboxFiles); the database keeps one row per path with the
version (size, mtime, inode) last registered. After every cell, `collect` compares the folder with those rows:
whatever is new or changed is a generated artifact, registered as a container file (`source: "assistant"`) and
exported as a Files-API file (`purpose: "assistants_output"`). The rows are the baseline, so detection survives
restarts and never depends on the model mentioning a file.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import posixpath
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from orchestrator.db import Database
from orchestrator.errors import InvalidRequest, NotFound
from orchestrator.sandbox import safefs
from orchestrator.sandbox.host import SandboxFiles
from orchestrator.sandbox.models import Artifact, Collected
from orchestrator.sandbox.runtime import CONTAINER_DATA_DIR
from orchestrator.services.exports import Exports
from orchestrator.services.storage import FileStore, safe_filename
from retrieval.ids import new_id
from retrieval.sqlite import PageRequest, keyset_page

# Files a look after a cell checks on the event loop itself before leaving the scan to a thread.
_LOOK_ENTRIES = 32
_COLUMNS = "id, container_id, path, bytes, created_at, source, file_id, mtime_ns, inode"


class ContainerFileNotFound(NotFound):
    def __init__(self, file_id: str) -> None:
        super().__init__(f"No such container file: {file_id}")
        self.file_id = file_id


class ContainerFileError(InvalidRequest):
    """A container file cannot be written or read (bad name, a folder in the way, the sandbox disk is full)."""

    code = "invalid_file"


@dataclass(frozen=True)
class ContainerFile:
    id: str
    container_id: str
    path: str  # relative to /mnt/data
    bytes: int
    created_at: int
    source: str
    file_id: str | None
    mtime_ns: int
    inode: int

    @property
    def sandbox_path(self) -> str:
        return f"{CONTAINER_DATA_DIR}/{self.path}"

    def same_version(self, stat: safefs.FileStat) -> bool:
        return (self.bytes, self.mtime_ns, self.inode) == (stat.size, stat.mtime_ns, stat.inode)


class ContainerFileStore:
    """The rows: one per (container, path)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def put(self, container_id: str, path: str, stat: safefs.FileStat, source: str,
            file_id: str | None) -> ContainerFile:
        """Record the current version of `path`; a path seen before keeps its id and creation time."""
        return self.put_many(container_id, [(path, stat, source, file_id)])[0]

    def put_many(self, container_id: str,
                 versions: list[tuple[str, safefs.FileStat, str, str | None]]) -> list[ContainerFile]:
        """Record many (path, stat, source, file_id) versions in one transaction."""
        if not versions:  # after most cells: no write transaction (and no wait for the write lock) for nothing
            return []
        records = []
        with self._db.transaction() as conn:
            for path, stat, source, file_id in versions:
                row = conn.execute("SELECT id, created_at FROM container_files WHERE container_id = ? AND path = ?",
                                   (container_id, path)).fetchone()
                if row is None:
                    cfile_id, created_at = new_id("cfile_"), int(time.time())
                    conn.execute(
                        f"INSERT INTO container_files ({_COLUMNS}, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, "
                        "(SELECT COALESCE(MAX(seq), 0) + 1 FROM container_files))",
                        (cfile_id, container_id, path, stat.size, created_at, source, file_id, stat.mtime_ns,
                         stat.inode),
                    )
                else:
                    cfile_id, created_at = row
                    conn.execute(
                        "UPDATE container_files SET bytes = ?, source = ?, file_id = ?, mtime_ns = ?, inode = ? "
                        "WHERE id = ?", (stat.size, source, file_id, stat.mtime_ns, stat.inode, cfile_id))
                records.append(ContainerFile(cfile_id, container_id, path, stat.size, created_at, source, file_id,
                                             stat.mtime_ns, stat.inode))
        return records

    def get(self, container_id: str, cfile_id: str) -> ContainerFile:
        row = self._db.one(f"SELECT {_COLUMNS} FROM container_files WHERE container_id = ? AND id = ?",
                           (container_id, cfile_id))
        if row is None:
            raise ContainerFileNotFound(cfile_id)
        return ContainerFile(*row)

    def page(self, container_id: str, page: PageRequest) -> tuple[list[ContainerFile], bool]:
        """One page of the container's files in creation order; returns (files, has_more)."""
        with self._db.read() as conn:
            rows, has_more = keyset_page(conn, page, select=_COLUMNS, table="container_files",
                                         where="container_id = ?", args=(container_id,))
        return [ContainerFile(*row) for row in rows], has_more

    def all(self, container_id: str, limit: int = -1) -> list[ContainerFile]:
        """Every file of the container (or the first `limit`), oldest first."""
        rows = self._db.all(f"SELECT {_COLUMNS} FROM container_files WHERE container_id = ? ORDER BY seq "
                            "LIMIT COALESCE(NULLIF(?, -1), 9223372036854775807)",
                            (container_id, limit))
        return [ContainerFile(*row) for row in rows]

    def delete(self, cfile_ids: Iterable[str]) -> None:
        with self._db.transaction() as conn:
            conn.executemany("DELETE FROM container_files WHERE id = ?", [(i,) for i in cfile_ids])

    def delete_container(self, container_id: str) -> None:
        self._db.execute("DELETE FROM container_files WHERE container_id = ?", (container_id,))


@dataclass(frozen=True)
class ScanLimits:
    """How much of /mnt/data one look after a cell may visit and list."""

    max_entries: int = 10_000
    max_depth: int = 32
    max_listed: int = 100  # changed files exported and listed per cell; the rest are only counted


class ContainerFiles:
    """Container files over a sandbox's workspace: upload, copy in, read, delete, and artifact collection."""

    def __init__(self, store: ContainerFileStore, files: FileStore, sandbox_files: Callable[[str], SandboxFiles],
                 exports: Exports, limits: ScanLimits) -> None:
        """`sandbox_files` gives the /mnt/data of a sandbox, on whichever host it lives."""
        self.store = store
        self._files = files
        self._sandbox_files = sandbox_files
        self._exports = exports
        self._limits = limits
        # An upload and a collection must not interleave, or a half-written upload looks like an artifact.
        self._locks: dict[str, asyncio.Lock] = {}

    def _lock(self, container_id: str) -> asyncio.Lock:
        return self._locks.setdefault(container_id, asyncio.Lock())

    # ---- files put in by the user --------------------------------------------------------------------------

    async def upload(self, container_id: str, filename: str, chunks: Iterable[bytes], *,
                     file_id: str | None = None) -> ContainerFile:
        """Write a file into /mnt/data under its (sanitised) name, replacing any file of that name. A name with a
        folder in it is refused: it would otherwise land somewhere the caller did not ask for."""
        if "/" in filename.strip("/") or "\\" in filename:
            raise InvalidRequest(f"The file name '{filename}' has a folder in it; upload the file by its own name and "
                                 "move it with code.", param="file")
        path = safe_filename(filename)
        async with self._lock(container_id):
            return await asyncio.to_thread(self._write, container_id, path, chunks, file_id)

    async def copy_in(self, container_id: str, file_id: str) -> ContainerFile:
        """Place a Files-API file in /mnt/data under its original name."""
        stored = self._files.get(file_id)
        return await self.upload(container_id, stored.filename, await self._stored_bytes(file_id), file_id=file_id)

    async def restore(self, container_id: str, record: ContainerFile, file_id: str) -> ContainerFile:
        """Write a container file of another sandbox back, at its path, from its stored copy `file_id`."""
        chunks = await self._stored_bytes(file_id)
        async with self._lock(container_id):
            return await asyncio.to_thread(self._write, container_id, record.path, chunks, file_id, record.source)

    async def _stored_bytes(self, file_id: str) -> Iterator[bytes]:
        blob = await asyncio.to_thread(self._files.blob_path, file_id)  # from a bucket: a download, off the loop
        return safefs.read_chunks(os.open(blob, os.O_RDONLY | os.O_CLOEXEC))

    def _write(self, container_id: str, path: str, chunks: Iterable[bytes], file_id: str | None,
               source: str = "user") -> ContainerFile:
        try:
            stat = self._sandbox_files(container_id).write(container_id, path, chunks)
        except IsADirectoryError as exc:
            raise ContainerFileError(f"A folder named '{path}' is in the way in {CONTAINER_DATA_DIR}.",
                                     param="file") from exc
        except OSError as exc:  # ENOSPC: the sandbox's disk quota is full
            raise ContainerFileError(f"Could not write '{path}' into the container: {exc.strerror}.",
                                     param="file") from exc
        except safefs.UnsafePath as exc:
            raise ContainerFileError(f"'{path}' was replaced inside the container while being written.",
                                     param="file") from exc
        return self.store.put(container_id, path, stat, source, file_id)

    # ---- reading and deleting ------------------------------------------------------------------------------

    async def open(self, container_id: str, cfile_id: str) -> tuple[ContainerFile, Iterator[bytes]]:
        """The file's row and its current bytes; ContainerFileNotFound if it is gone from the sandbox. Opened in a
        worker thread: on a remote host, opening is a round trip to its engine."""
        record = self.store.get(container_id, cfile_id)
        try:
            _, chunks = await asyncio.to_thread(self._sandbox_files(container_id).read, container_id, record.path)
        except safefs.UnsafePath as exc:
            raise ContainerFileNotFound(cfile_id) from exc
        return record, chunks

    async def delete(self, container_id: str, cfile_id: str) -> None:
        record = self.store.get(container_id, cfile_id)
        async with self._lock(container_id):
            await asyncio.to_thread(self._sandbox_files(container_id).remove, container_id, record.path)
            self.store.delete([cfile_id])

    def forget_container(self, container_id: str) -> None:
        """Drop the rows of a deleted container (its exported Files-API copies stay: they belong to the user)."""
        self.store.delete_container(container_id)
        self._locks.pop(container_id, None)

    # ---- artifacts -----------------------------------------------------------------------------------------

    async def collect(self, sandbox_id: str) -> Collected:
        """Register and export everything created or changed under /mnt/data since the last look."""
        async with self._lock(sandbox_id):
            if self._unchanged(sandbox_id):
                return Collected()
            return await asyncio.to_thread(self._collect, sandbox_id)

    def _unchanged(self, container_id: str) -> bool:
        """Whether a short look finds /mnt/data just as registered: the usual answer after a cell, given on the
        event loop instead of after two thread hand-offs. The look is bounded (a few dozen entries and rows, no
        mounting), so a sandbox full of files costs the loop no more; anything else is left to `_collect`."""
        scan = self._sandbox_files(container_id).glance(container_id, max_entries=_LOOK_ENTRIES,
                                                         max_depth=self._limits.max_depth)
        if scan is None:
            return False
        known = self.store.all(container_id, limit=_LOOK_ENTRIES + 1)
        return scan.complete and len(known) == len(scan.files) and all(
            record.path in scan.files and record.same_version(scan.files[record.path]) for record in known)

    def _collect(self, container_id: str) -> Collected:
        limits = self._limits
        files = self._sandbox_files(container_id)
        scan = files.scan(container_id, max_entries=limits.max_entries, max_depth=limits.max_depth)
        if scan is None:  # the files cannot be seen now: seeing nothing must not delete every row
            return Collected()
        known = {record.path: record for record in self.store.all(container_id)}
        if scan.complete:  # a partial scan cannot tell a deleted file from one it did not reach
            gone = [record.id for path, record in known.items() if path not in scan.files]
            if gone:
                self.store.delete(gone)
        changed = sorted(path for path, stat in scan.files.items()
                         if path not in known or not known[path].same_version(stat))
        listed, rest = changed[:limits.max_listed], changed[limits.max_listed:]
        exports = [export for path in listed if (export := self._export(container_id, files, path))]
        records = self.store.put_many(container_id, [version for version, _ in exports])
        # The rest are registered too (in the same kind of batch), so the next cell does not see them as new.
        self.store.put_many(container_id, [(path, scan.files[path], "assistant", None) for path in rest])
        artifacts = tuple(Artifact(record.sandbox_path, record.bytes, record.id, record.file_id, error)
                          for record, (_, error) in zip(records, exports, strict=True))
        return Collected(artifacts, omitted=len(rest), complete=scan.complete)

    def _export(self, container_id: str, files: SandboxFiles,
                path: str) -> tuple[tuple[str, safefs.FileStat, str, str | None], str | None] | None:
        """The version to register for `path` and why it was not exported, if it was not; None if it is gone."""
        try:
            stat, chunks = files.read(container_id, path)
        except safefs.UnsafePath:
            return None  # removed or replaced by a link since the scan
        with contextlib.closing(chunks):
            exported = self._exports.store(container_id, chunks, posixpath.basename(path), stat.size)
        error = f"{exported.error} It can still be downloaded as a container file." if exported.error else None
        return (path, stat, "assistant", exported.file_id), error

