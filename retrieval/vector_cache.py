"""Embeddings by (model, content hash), kept in the catalog: a text is embedded once, whichever store or file it
comes back in."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from retrieval.catalog import Catalog
from retrieval.embedding import Embedder, embed_texts

_EMBED_SLICE = 64


class VectorCache:
    def __init__(self, catalog: Catalog, *, embedder: Callable[[], Embedder], model_name: Callable[[], str]) -> None:
        self._catalog = catalog
        self._embedder = embedder
        self._model_name = model_name

    def vectors(self, texts: dict[str, str]) -> dict[str, np.ndarray]:
        """Vectors by content hash: cached ones from the database, the rest embedded now."""
        cached = self._cached(list(texts))
        missing = [h for h in texts if h not in cached]
        # A slice per call: the model takes one call at a time, and other stores' files take their turns between.
        for start in range(0, len(missing), _EMBED_SLICE):
            part = missing[start:start + _EMBED_SLICE]
            for h, vector in zip(part, embed_texts(self._embedder(), [texts[h] for h in part]), strict=True):
                cached[h] = vector
        return cached

    def store(self, conn: Any, vectors: dict[str, np.ndarray]) -> None:
        """Keep the vectors, inside the caller's write transaction."""
        conn.executemany("INSERT INTO embeddings (model, hash, vector) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                         [(self._model_name(), h, vector.tobytes()) for h, vector in vectors.items()])

    def _cached(self, hashes: list[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        with self._catalog.read() as conn:
            for start in range(0, len(hashes), 500):
                part = hashes[start:start + 500]
                rows = conn.execute(f"SELECT hash, vector FROM embeddings WHERE model = ? AND hash IN "
                                    f"({','.join('?' * len(part))})", (self._model_name(), *part)).fetchall()
                found.update((h, np.frombuffer(blob, dtype=np.float32)) for h, blob in rows)
        return found
