"""Dense search: a FAISS inner-product index per vector store (faiss is imported only here).

Vectors are L2-normalised, so inner product is cosine similarity. Rows are stored as float16 (an exact scan of
half the bytes: about 4x faster than float32 at 100k chunks, with rankings unchanged on SciFact), and
`IndexIDMap2` maps FAISS rows to chunk ids, so removing a file removes exactly its ids. Removing ids from a flat
index moves every row after them (4 ms a call at 100k chunks), so removals are first kept aside and skipped in
the scan, and applied in one pass once enough have gathered or before a checkpoint. The index lives in memory;
`save` writes a checkpoint file atomically.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path

import faiss
import numpy as np

from retrieval.atomic_file import write_atomically

_REMOVALS_KEPT_ASIDE = 1024
# Past this many chunks a store's vectors go into inverted lists (IVF): clustered around centroids, of which a
# search scans the IVF_PROBES nearest, instead of every row (see bench/million.py for how these were chosen).
IVF_FROM = 100_000
IVF_PROBES = 32


def lists_for(chunks: int, ivf_from: int = IVF_FROM) -> int | None:
    """How many inverted lists an index of this many chunks should have; None while a flat scan is fast enough.
    About 4·√n (a power of two), and never so many that a list would train on fewer than 64 vectors."""
    if chunks < ivf_from:
        return None
    return max(1, min(1 << round(math.log2(4 * math.sqrt(chunks))), chunks // 64))


class VectorIndex:
    def __init__(self, dimension: int, index: faiss.Index | None = None) -> None:
        self.dimension = dimension
        self._index = index if index is not None else faiss.IndexIDMap2(
            faiss.IndexScalarQuantizer(dimension, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT))
        self._removed: set[int] = set()  # still in the FAISS index, never returned
        # Searches and writes may come from different threads; a FAISS index is not safe for both at once.
        self._lock = threading.Lock()

    @classmethod
    def inverted(cls, ids: np.ndarray, vectors: np.ndarray, lists: int, *, training: int = 100_000) -> VectorIndex:
        """An IVF index (float16 rows) of these vectors, its centroids trained on a sample of them."""
        dimension = vectors.shape[1]
        index = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(dimension), dimension, lists,
                                              faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
        sample = np.random.default_rng(0).choice(len(vectors), min(training, len(vectors)), replace=False)
        index.train(np.ascontiguousarray(vectors[np.sort(sample)], dtype=np.float32))
        index.nprobe = IVF_PROBES
        inverted = cls(dimension, index)
        inverted.add(ids, vectors)
        return inverted

    @property
    def lists(self) -> int | None:
        """The number of inverted lists, or None for a flat index."""
        return int(self._index.nlist) if isinstance(self._index, faiss.IndexIVF) else None

    def __len__(self) -> int:
        # Removals kept aside may name ids the index never held (a deletion replayed from the database), so
        # this is a lower bound while any are pending; searches go by what FAISS holds.
        return max(int(self._index.ntotal) - len(self._removed), 0)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids):
            with self._lock:
                self._index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32),
                                         np.ascontiguousarray(ids, dtype=np.int64))

    def remove(self, ids: np.ndarray) -> None:
        with self._lock:
            self._removed.update(int(i) for i in ids)
            if len(self._removed) >= _REMOVALS_KEPT_ASIDE:
                self._apply_removals()

    def _apply_removals(self) -> None:
        if self._removed:
            gone = np.fromiter(self._removed, dtype=np.int64, count=len(self._removed))
            # faiss's Python wrapper takes an id array here; its stubs only know the IDSelector form.
            self._index.remove_ids(gone)  # type: ignore[arg-type]
            self._removed.clear()

    def search(self, vector: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        """(chunk id, cosine similarity) best first, over `allowed` ids only if given."""
        with self._lock:
            return self._search(np.ascontiguousarray(vector.reshape(1, -1), dtype=np.float32), k, allowed)

    def _search(self, query: np.ndarray, k: int, allowed: np.ndarray | None) -> list[tuple[int, float]]:
        held = int(self._index.ntotal)
        if held == 0 or k <= 0:
            return []
        removed = np.fromiter(self._removed, dtype=np.int64, count=len(self._removed))
        # FAISS does not own selectors: both stay referenced here until the search is done.
        selector: faiss.IDSelector | None = None
        skipped = None
        if allowed is not None:
            allowed = np.setdiff1d(allowed, removed) if len(removed) else allowed
            if len(allowed) == 0:
                return []
            selector = faiss.IDSelectorBatch(np.ascontiguousarray(allowed, np.int64))
        elif len(removed):
            skipped = faiss.IDSelectorBatch(removed)
            selector = faiss.IDSelectorNot(skipped)
        params: faiss.SearchParameters | None = None
        if isinstance(self._index, faiss.IndexIVF):
            params = faiss.SearchParametersIVF(sel=selector, nprobe=self._index.nprobe)  # type: ignore[call-arg]
        elif selector is not None:
            params = faiss.SearchParameters(sel=selector)  # type: ignore[call-arg] # set by keyword at runtime
        scores, ids = self._index.search(query, min(k, held), params=params)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i != -1]

    def save(self, path: Path) -> None:
        try:
            with self._lock:
                self._apply_removals()
                write_atomically(path, lambda temporary: faiss.write_index(self._index, str(temporary)))
        except RuntimeError as exc:  # how faiss reports a failed write, a full disk among them
            raise OSError(f"could not write {path.name}: {exc}") from exc

    @classmethod
    def load(cls, path: Path, dimension: int) -> VectorIndex | None:
        """The checkpoint at `path`, or None if it is missing or unreadable (the caller rebuilds)."""
        try:
            index = faiss.read_index(str(path))
        except (RuntimeError, OSError):
            return None
        if index.d != dimension:
            return None
        if isinstance(index, faiss.IndexIVF):
            index.nprobe = IVF_PROBES
        return cls(dimension, index)
