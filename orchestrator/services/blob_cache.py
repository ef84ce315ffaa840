"""Local copies of blobs kept elsewhere (a bucket), in one folder bounded in bytes: least recently used go first,
and a missing copy is fetched once however many callers ask for it at the same time."""

from __future__ import annotations

import os
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def sweep_folder(folder: Path, known: set[str]) -> None:
    """Remove partial files (`*.part`) and files not named in `known` from `folder`."""
    for entry in folder.iterdir():
        if entry.is_file() and (entry.name.endswith(".part") or entry.name not in known):
            entry.unlink(missing_ok=True)


class BlobCache:
    """Copies named by blob id under `folder`, at most `capacity` bytes in all (the newest copy stays even when
    it alone is larger: its reader needs it). Safe to share between threads."""

    def __init__(self, folder: Path, capacity: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self._folder = folder
        self._capacity = capacity
        self._sizes: OrderedDict[str, int] = OrderedDict()  # oldest use first
        self._total = 0
        self._guard = threading.Lock()
        self._claims: dict[str, tuple[threading.Lock, list[int]]] = {}

    @property
    def folder(self) -> Path:
        return self._folder

    @property
    def total(self) -> int:
        """Bytes held now."""
        return self._total

    def load(self, known: set[str]) -> None:
        """Index what an earlier process left, oldest access first; partial copies and copies of blobs not in
        `known` (deleted meanwhile, perhaps by another replica) are removed."""
        sweep_folder(self._folder, known)
        kept = []
        for entry in self._folder.iterdir():
            if entry.is_file():
                stat = entry.stat()
                kept.append((stat.st_atime, entry.name, stat.st_size))
        with self._guard:
            for _, name, size in sorted(kept):
                self._remember(name, size)
            self._evict()

    def get(self, blob_id: str, fetch: Callable[[Path], None]) -> Path:
        """The local copy of `blob_id`; when there is none, `fetch(temporary_path)` writes it first."""
        target = self._folder / blob_id
        with self._claim(blob_id):
            with self._guard:
                if blob_id in self._sizes and target.exists():
                    self._sizes.move_to_end(blob_id)
                    return target
            temporary = self._folder / f"{blob_id}.{secrets.token_hex(4)}.part"
            try:
                fetch(temporary)
                self._admit(blob_id, temporary)
            finally:
                temporary.unlink(missing_ok=True)
        return target

    def add(self, blob_id: str, source: Path) -> None:
        """Move the complete file `source` in as `blob_id`'s copy."""
        with self._claim(blob_id):
            self._admit(blob_id, source)

    def discard(self, blob_id: str) -> None:
        """Remove the copy (after any fetch of it under way)."""
        with self._claim(blob_id), self._guard:
            self._forget(blob_id)

    def _admit(self, blob_id: str, source: Path) -> None:
        size = source.stat().st_size
        os.replace(source, self._folder / blob_id)
        with self._guard:
            self._total -= self._sizes.pop(blob_id, 0)
            self._remember(blob_id, size)
            self._evict()

    def _remember(self, blob_id: str, size: int) -> None:
        self._sizes[blob_id] = size
        self._total += size

    def _evict(self) -> None:
        while self._total > self._capacity and len(self._sizes) > 1:
            self._forget(next(iter(self._sizes)))

    def _forget(self, blob_id: str) -> None:
        # An evicted copy a reader already opened stays readable until it closes it (POSIX unlink).
        self._total -= self._sizes.pop(blob_id, 0)
        (self._folder / blob_id).unlink(missing_ok=True)

    @contextmanager
    def _claim(self, blob_id: str) -> Iterator[None]:
        """One lock per blob id, made on first use and dropped when no caller holds or waits for it."""
        with self._guard:
            lock, users = self._claims.setdefault(blob_id, (threading.Lock(), [0]))
            users[0] += 1
        try:
            with lock:
                yield
        finally:
            with self._guard:
                users[0] -= 1
                if not users[0]:
                    del self._claims[blob_id]
