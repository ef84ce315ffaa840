"""Each store's indexes in memory (vectors and keyword postings): loaded lazily from their last checkpoint plus the
rows committed since, kept in step with writes from this process and from others (`toolshed index` writing the
same database, or other replicas on PostgreSQL), and checkpointed together (temp file, rename) only when the
backlog is a sizeable fraction of the store. Checkpoints are this engine's own (retrieval.checkpoint_record)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from retrieval.catalog import Catalog
from retrieval.checkpoint_record import CheckpointRecord, CheckpointRecords
from retrieval.errors import DiskFull
from retrieval.index import IVF_FROM, VectorIndex, lists_for
from retrieval.keyword import KeywordIndex
from retrieval.postings import Bm25Postings

log = logging.getLogger("toolshed.retrieval")

_CHECKPOINT_MIN_BACKLOG = 2000


@dataclass
class _Loaded:
    index: VectorIndex
    keyword: Bm25Postings
    max_chunk: int  # every chunk id up to this one is in both indexes
    deletion: int  # every deletion up to this seq has been applied to both


def _postings_path(checkpoint: Path) -> Path:
    return checkpoint.with_suffix(".bm25.npz")



class LoadedIndexes:
    def __init__(self, catalog: Catalog, checkpoints: Path, keyword: KeywordIndex, *,
                 model_name: Callable[[], str], dimension: Callable[[], int], ivf_from: int = IVF_FROM) -> None:
        self._catalog = catalog
        self._checkpoints = checkpoints
        checkpoints.mkdir(parents=True, exist_ok=True)
        self._records = CheckpointRecords(catalog, checkpoints)
        self._keyword = keyword
        self._model_name = model_name
        self._dimension = dimension
        self._ivf_from = ivf_from
        self._loaded: dict[str, _Loaded] = {}
        # Each store's row signature when this process last brought its in-memory indexes up to date.
        self._seen: dict[str, tuple[int, int, int]] = {}
        # Orders "commit, then apply to the in-memory indexes" among writers, catch-ups and checkpoints, so
        # checkpoints always match their watermarks.
        self.lock = threading.RLock()

    def loaded(self, store_id: str) -> _Loaded | None:
        """The store's index if this process has loaded it."""
        return self._loaded.get(store_id)

    def forget(self, store_id: str) -> None:
        """Drop a deleted store's index and its checkpoints."""
        self._loaded.pop(store_id, None)
        self._seen.pop(store_id, None)
        for checkpoint in self._checkpoints.glob(f"{store_id}-*"):
            checkpoint.unlink(missing_ok=True)

    def get(self, store_id: str) -> _Loaded:
        if (loaded := self._loaded.get(store_id)) is not None:
            return loaded  # searches need no lock once a store is loaded: its indexes guard themselves
        with self.lock:
            if store_id in self._loaded:
                return self._loaded[store_id]
            record, pruned = self._records.get(store_id)
            if record.deletion < pruned:
                record = CheckpointRecord()  # deletions it lacks were pruned since: it cannot be caught up
            checkpoint = self._checkpoints / record.name if record.name else None
            max_chunk, deletion, dimension = record.max_chunk, record.deletion, self._dimension()
            index = VectorIndex.load(checkpoint, dimension) if checkpoint else None
            keyword = Bm25Postings.load(_postings_path(checkpoint)) if checkpoint and index is not None else None
            if index is None:
                # Built from the rows, in which no pruned deletion's chunk is left.
                index, keyword, max_chunk, deletion = VectorIndex(dimension), Bm25Postings(), 0, pruned
            elif keyword is None:
                # A checkpoint from before postings were saved: its rows up to the watermark are the ones in the
                # keyword table now, less those deleted since (which the catch-up below would remove anyway).
                keyword = Bm25Postings()
                with self._catalog.read() as conn:
                    keyword.add(self._keyword.rows(conn, self._catalog.store_key(store_id), 0, max_chunk))
            loaded = _Loaded(index, keyword, max_chunk, deletion)
            self._catch_up(store_id, loaded)
            self._loaded[store_id] = loaded
            return loaded

    def _catch_up(self, store_id: str, loaded: _Loaded) -> None:
        """Apply what was committed after the checkpoint: deletions, then new chunks."""
        with self._catalog.read() as conn:
            gone = conn.execute("SELECT seq, chunk_id FROM deletions WHERE store_id = ? AND seq > ?",
                                (store_id, loaded.deletion)).fetchall()
            ids, vectors = self._vectors(conn, store_id, after=loaded.max_chunk)
            analysed = self._keyword.rows(conn, self._catalog.store_key(store_id), loaded.max_chunk,
                                          int(ids[-1])) if len(ids) else []
        if gone:
            # A chunk added after the watermark and deleted since was never loaded: nothing to remove.
            removed = np.array([chunk_id for _, chunk_id in gone if chunk_id <= loaded.max_chunk], dtype=np.int64)
            loaded.index.remove(removed)
            loaded.keyword.remove(removed)
            loaded.deletion = max(seq for seq, _ in gone)
        if len(ids):
            loaded.index.add(ids, vectors)
            loaded.keyword.add(analysed)
            loaded.max_chunk = int(ids[-1])

    def _vectors(self, conn: Any, store_id: str, *, after: int = 0,
                 upto: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The store's chunk ids in (after, upto] and their vectors, in id order."""
        rows = conn.execute("SELECT c.id, e.vector FROM chunks c JOIN embeddings e ON e.model = ? AND "
                            "e.hash = c.hash WHERE c.store_id = ? AND c.id > ? AND c.id <= ? ORDER BY c.id",
                            (self._model_name(), store_id, after, upto if upto is not None else 2**63 - 1)
                            ).fetchall()
        ids = np.array([chunk_id for chunk_id, _ in rows], dtype=np.int64)
        vectors = np.frombuffer(b"".join(blob for _, blob in rows), dtype=np.float32)
        return ids, vectors.reshape(len(rows), self._dimension())

    def _signature(self, store_id: str) -> tuple[int, int, int] | None:
        """What changes whenever the store's rows do, whichever process wrote them: the newest chunk, the newest
        deletion, and how far deletions were pruned (a checkpoint prunes those it covers); None: no such store."""
        with self._catalog.read() as conn:
            row = conn.execute("SELECT (SELECT COALESCE(MAX(id), 0) FROM chunks WHERE store_id = ?), "
                               "(SELECT COALESCE(MAX(seq), 0) FROM deletions WHERE store_id = ?), "
                               "checkpoint_deletion FROM stores WHERE id = ?",
                               (store_id, store_id, store_id)).fetchone()
        return (row[0], row[1], row[2] or 0) if row else None

    def refresh(self, store_id: str) -> None:
        """Take in what another process (`toolshed index`) committed to this store since we last looked."""
        signature = self._signature(store_id)
        if self._seen.get(store_id) == signature:
            return
        # A writer of this process holds the lock for its whole transaction and applies its own rows itself; a
        # search does not wait it out: another process's rows are taken in by the next search instead.
        if not self.lock.acquire(blocking=False):
            return
        try:
            if self._seen.get(store_id) == signature:
                return
            if signature is None:  # deleted by another process or replica
                self.forget(store_id)
                return
            self._seen[store_id] = signature
            loaded = self._loaded.get(store_id)
            if loaded is not None and signature[2] > loaded.deletion:
                del self._loaded[store_id]  # deletions we never applied may be pruned: reload from the checkpoint
            elif loaded is not None:
                self._catch_up(store_id, loaded)
        finally:
            self.lock.release()

    def catch_up_loaded(self, store_id: str) -> None:
        """Called first in a write transaction (no other writer can commit now): what another process committed
        before it joins the in-memory index, so watermarks never skip past rows this process has not seen."""
        loaded = self._loaded.get(store_id)
        if loaded is None:
            return
        signature = self._signature(store_id)
        if signature is not None and signature[2] > loaded.deletion:
            del self._loaded[store_id]  # another replica pruned deletions we never applied: reload, as refresh() does
        else:
            self._catch_up(store_id, loaded)

    def mark_seen(self, store_id: str) -> None:
        """Our own write is already applied in memory: the next search need not treat it as news."""
        if (signature := self._signature(store_id)) is not None:
            self._seen[store_id] = signature

    def maybe_checkpoint(self, store_id: str, force: bool = False) -> None:
        """Write the in-memory index to disk when enough has changed since the last checkpoint."""
        with self.lock:
            loaded = self._loaded.get(store_id) or (self.get(store_id) if force else None)
            if loaded is None:
                return
            record, _ = self._records.get(store_id)
            with self._catalog.read() as conn:
                backlog = conn.execute("SELECT (SELECT COUNT(*) FROM chunks WHERE store_id = ? AND id > ?) + "
                                       "(SELECT COUNT(*) FROM deletions WHERE store_id = ? AND seq > ?)",
                                       (store_id, record.max_chunk, store_id, record.deletion)).fetchone()[0]
            lists = self._lists_due(loaded)
            if lists is None and (not backlog or
                                  (not force and backlog < max(_CHECKPOINT_MIN_BACKLOG, len(loaded.index) // 4))):
                return
            if lists is not None:
                self._reshape(store_id, loaded, lists)
            name = f"{store_id}-{loaded.max_chunk}-{loaded.deletion}.faiss"
            try:
                loaded.index.save(self._checkpoints / name)
                loaded.keyword.save(_postings_path(self._checkpoints / name))
                self._records.put(store_id, CheckpointRecord(name, loaded.max_chunk, loaded.deletion))
            except (OSError, DiskFull) as exc:
                # A checkpoint only saves replaying committed rows at the next load; the rows are the truth.
                if record.name != name:
                    (self._checkpoints / name).unlink(missing_ok=True)
                    _postings_path(self._checkpoints / name).unlink(missing_ok=True)
                log.warning("checkpoint of %s not written: %s", store_id, exc)
                if force:
                    raise
                return
            if record.name and record.name != name:
                (self._checkpoints / record.name).unlink(missing_ok=True)
                _postings_path(self._checkpoints / record.name).unlink(missing_ok=True)

    def _lists_due(self, loaded: _Loaded) -> int | None:
        """The inverted lists the store's vectors should be rebuilt into now, if any: past IVF_FROM chunks, and
        again with more lists each time the store quadruples."""
        lists = lists_for(len(loaded.index), self._ivf_from)
        if lists is None or (loaded.index.lists is not None and lists < 2 * loaded.index.lists):
            return None
        return lists

    def _reshape(self, store_id: str, loaded: _Loaded, lists: int) -> None:
        """Rebuild the store's vectors as inverted lists. Writers wait meanwhile (~20 s at 100k chunks, a few
        minutes at a million); searches go on against the old index until the new one replaces it."""
        with self._catalog.read() as conn:
            ids, vectors = self._vectors(conn, store_id, upto=loaded.max_chunk)
        started = time.perf_counter()
        loaded.index = VectorIndex.inverted(ids, vectors, lists)
        log.info("store %s: %d vectors now in %d inverted lists (%.1f s)", store_id, len(ids), lists,
                 time.perf_counter() - started)
