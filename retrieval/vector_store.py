"""The retrieval engine: vector stores of files, ingested (parse, chunk, embed, index) and searched.

Writes are incremental: indexing a file inserts its chunks, its keyword rows and any new embeddings in one
transaction; removing a file deletes them and records the chunk ids in `deletions`. The in-memory FAISS index
of a store is loaded lazily from its last checkpoint plus the rows committed since, and a new checkpoint is
written only when that backlog is a sizeable fraction of the store, so the cost of a write does not grow with
the store. Embeddings are cached by (model, text hash): a file added to two stores is embedded once. The catalog
is an SQLite file under the engine's root, or PostgreSQL shared by replicas (each keeps its own checkpoints).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from retrieval import filters as attribute_filters
from retrieval.catalog import Catalog
from retrieval.catalog_database import open_database
from retrieval.chunking import chunk_pages
from retrieval.embedding import DEFAULT_MODEL, DEFAULT_MODEL_CACHE, Embedder, content_hash, embed_texts
from retrieval.errors import FileProblem, InvalidRequest, StoreFileNotFound
from retrieval.fusion import DEFAULT_DENSE_WEIGHT, rank
from retrieval.index import IVF_FROM
from retrieval.isolation import IsolatedParser, ParseLimits
from retrieval.keyword import Analyzer, KeywordIndex, PlainKeywordIndex
from retrieval.loaded_index import LoadedIndexes
from retrieval.models import Chunk, ChunkingStrategy, Document, FileError, Hit, SearchMode, Store, StoreFile
from retrieval.passages import distinct
from retrieval.runtimes import DEFAULT_RUNTIME, LazyEmbedder, Runtime
from retrieval.vector_cache import VectorCache

log = logging.getLogger("toolshed.retrieval")
Progress = Callable[[int], None]
# Chunks embedded per round: big enough for efficient batches, small enough to commit often.
_ROUND_CHUNKS = 512


class VectorStoreEngine:
    def __init__(self, root: Path, *, model: str = DEFAULT_MODEL, runtime: Runtime = DEFAULT_RUNTIME,
                 model_cache: Path = DEFAULT_MODEL_CACHE, embedder: Embedder | None = None,
                 dense_weight: float = DEFAULT_DENSE_WEIGHT, parse_limits: ParseLimits | None = None,
                 ivf_from: int = IVF_FROM, database_url: str = "") -> None:
        """`database_url` (postgresql://...): the catalog in PostgreSQL, shared with other engines (replicas);
        empty: an SQLite file under `root`. Checkpoints stay under `root` either way."""
        self._catalog = Catalog(open_database(root, database_url))
        self._parser = IsolatedParser(parse_limits)
        self._embedding = LazyEmbedder(model, runtime, model_cache, embedder)
        # The catalog's reads are the engine's own verbs; its writes go through the engine, which keeps the
        # in-memory indexes in step.
        catalog = self._catalog
        self.store, self.stores, self.has_stores, self.require = catalog.store, catalog.stores, catalog.has_stores, \
            catalog.store_key
        self.file, self.files, self.pending = catalog.file, catalog.files, catalog.pending
        self.chunk_count, self.chunks = catalog.chunk_count, catalog.chunks
        self.store_page, self.file_page = catalog.store_page, catalog.file_page
        self.update_store, self.batch, self.create_batch, self.cancel_batch = catalog.update_store, catalog.batch, \
            catalog.create_batch, catalog.cancel_batch
        self._keyword = (PlainKeywordIndex if self._catalog.shared else KeywordIndex)(Analyzer())
        self.dense_weight = dense_weight
        self._cache = VectorCache(self._catalog, embedder=lambda: self.embedder, model_name=lambda: self.model_name)
        self._indexes = LoadedIndexes(self._catalog, root / "indexes", self._keyword,
                                      model_name=lambda: self.model_name, dimension=lambda: self.embedder.dimension,
                                      ivf_from=ivf_from)

    @property
    def embedder(self) -> Embedder:
        return self._embedding.get()

    @property
    def model_loaded(self) -> bool:
        return self._embedding.loaded

    @property
    def model_name(self) -> str:
        return self._embedding.name

    def close(self) -> None:
        self._parser.close()
        self._catalog.close()

    # ---- stores --------------------------------------------------------------------------------------------

    def create_store(self, name: str = "", *, metadata: dict[str, str] | None = None,
                     expires_after_days: int | None = None, description: str | None = None) -> Store:
        store_id = self._catalog.create_store(name, metadata or {}, expires_after_days, description)
        with self._catalog.write() as conn:
            self._keyword.create(conn, self._catalog.store_key(store_id))
        return self._catalog.store(store_id)

    def delete_store(self, store_id: str) -> None:
        key = self._catalog.store_key(store_id)
        with self._indexes.lock, self._catalog.write() as conn:
            for table in ("chunks", "store_files", "deletions", "batches"):
                conn.execute(f"DELETE FROM {table} WHERE store_id = ?", (store_id,))
            conn.execute("DELETE FROM stores WHERE id = ?", (store_id,))
            self._keyword.drop(conn, key)
            self._indexes.forget(store_id)

    # ---- files ---------------------------------------------------------------------------------------------

    def attach(self, store_id: str, file_id: str, filename: str, *, attributes: dict[str, Any] | None = None,
               chunking: ChunkingStrategy | None = None, batch_id: str | None = None) -> StoreFile:
        """Add a file to a store as `in_progress`; `ingest` then indexes it."""
        return self._catalog.attach(store_id, file_id, filename, attributes or {}, chunking or ChunkingStrategy(),
                                   batch_id)

    def ingest(self, store_id: str, paths: Iterable[tuple[str, Path]], progress: Progress | None = None) -> None:
        """Parse and index attached files given as (file_id, path). A file that cannot be read ends `failed`
        with its reason; the others are indexed in rounds of batched embedding."""
        documents = []
        for file_id, path in paths:
            try:
                record = self._catalog.file(store_id, file_id)
            except StoreFileNotFound:  # detached while queued
                continue
            try:
                documents.append(Document(file_id, self._parser.parse(path, record.filename)))
            except FileProblem as problem:
                self._fail(store_id, file_id, FileError(problem.code, problem.message))
                if progress:
                    progress(1)
            except OSError as exc:
                self._fail(store_id, file_id, FileError("invalid_file", f"The file could not be read: {exc}"))
                if progress:
                    progress(1)
        self.index_documents(store_id, documents, progress)

    def index_documents(self, store_id: str, documents: list[Document], progress: Progress | None = None) -> None:
        """Chunk, embed and commit documents of attached files, a round of about 512 chunks at a time."""
        embedder = self.embedder
        pending: list[tuple[Document, list[Chunk]]] = []
        for document in documents:
            try:
                record = self._catalog.file(store_id, document.file_id)
            except StoreFileNotFound:
                continue
            if record.status != "in_progress":
                continue
            chunks = chunk_pages(document.pages, record.chunking, window=embedder.window,
                                 token_spans=embedder.token_spans)
            pending.append((document, chunks))
            if sum(len(c) for _, c in pending) >= _ROUND_CHUNKS:
                self._commit_round(store_id, pending, progress)
                pending = []
        if pending:
            self._commit_round(store_id, pending, progress)
        self._indexes.maybe_checkpoint(store_id)

    def _commit_round(self, store_id: str, pending: list[tuple[Document, list[Chunk]]],
                      progress: Progress | None) -> None:
        texts = {content_hash(c.text): c.text for _, chunks in pending for c in chunks}
        vectors = self._cache.vectors(texts)
        key = self._catalog.store_key(store_id)
        added: list[tuple[int, str]] = []
        analysed: list[tuple[int, str]] = []
        # The memory indexes take the new rows only once they are committed: a failed commit (a full disk) must
        # leave nothing behind whose chunk id SQLite would hand out again.
        with self._indexes.lock:
            with self._catalog.write() as conn:
                self._indexes.catch_up_loaded(store_id)
                self._insert_round(conn, store_id, key, pending, added, analysed)
                self._cache.store(conn, vectors)
            loaded = self._indexes.loaded(store_id)
            if loaded is not None and added:
                loaded.index.add(np.array([i for i, _ in added]), np.stack([vectors[h] for _, h in added]))
                loaded.keyword.add(analysed)
                loaded.max_chunk = max(i for i, _ in added)
            self._indexes.mark_seen(store_id)
        if progress:
            progress(len(pending))

    def _insert_round(self, conn: Any, store_id: str, key: int,
                      pending: list[tuple[Document, list[Chunk]]], added: list[tuple[int, str]],
                      analysed: list[tuple[int, str]]) -> None:
        """The round's chunks as rows (and keyword rows); `added` gets their (chunk id, content hash), `analysed`
        their (chunk id, keyword terms)."""
        dimension = self.embedder.dimension
        for document, chunks in pending:
            status = conn.execute("SELECT status FROM store_files WHERE store_id = ? AND file_id = ?",
                                  (store_id, document.file_id)).fetchone()
            if status is None or status[0] != "in_progress":  # cancelled or removed meanwhile
                continue
            if not chunks:
                self._catalog.set_status(conn, store_id, document.file_id, "failed", FileError(
                    "unsupported_file", "The file has no extractable text."))
                continue
            ids = [self._catalog.insert_chunk(conn, store_id, document.file_id, ordinal, chunk)
                   for ordinal, chunk in enumerate(chunks)]
            analysed += self._keyword.add(conn, key, [(i, c.text) for i, c in zip(ids, chunks, strict=True)])
            added.extend((i, content_hash(c.text)) for i, c in zip(ids, chunks, strict=True))
            usage = sum(len(c.text.encode()) for c in chunks) + len(chunks) * dimension * 4
            self._catalog.set_status(conn, store_id, document.file_id, "completed", usage_bytes=usage)

    def _fail(self, store_id: str, file_id: str, error: FileError) -> None:
        with self._catalog.write() as conn:
            self._catalog.set_status(conn, store_id, file_id, "failed", error)

    def fail_interrupted(self, store_id: str, file_id: str, reason: str) -> None:
        """Mark a file that cannot be ingested any more (its blob is gone) as failed with a server_error."""
        self._fail(store_id, file_id, FileError("server_error", reason))

    def remove_file(self, store_id: str, file_id: str) -> None:
        """Detach a file: its chunks leave the keyword index and the vector index at once."""
        self._catalog.file(store_id, file_id)
        key = self._catalog.store_key(store_id)
        with self._indexes.lock:
            with self._catalog.write() as conn:
                self._indexes.catch_up_loaded(store_id)
                ids = [row[0] for row in conn.execute("SELECT id FROM chunks WHERE store_id = ? AND file_id = ?",
                                                      (store_id, file_id))]
                conn.execute("DELETE FROM chunks WHERE store_id = ? AND file_id = ?", (store_id, file_id))
                conn.execute("DELETE FROM store_files WHERE store_id = ? AND file_id = ?", (store_id, file_id))
                self._keyword.remove(conn, key, ids)
                conn.executemany("INSERT INTO deletions (store_id, chunk_id) VALUES (?, ?)",
                                 [(store_id, i) for i in ids])
                seq = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM deletions").fetchone()[0]
            loaded = self._indexes.loaded(store_id)
            if loaded is not None:
                loaded.index.remove(np.array(ids, dtype=np.int64))
                loaded.keyword.remove(np.array(ids, dtype=np.int64))
                loaded.deletion = seq
            self._indexes.mark_seen(store_id)
        self._indexes.maybe_checkpoint(store_id)

    def stores_with_file(self, file_id: str) -> list[str]:
        return self._catalog.stores_with_file(file_id)

    def update_attributes(self, store_id: str, file_id: str, attributes: dict[str, Any]) -> StoreFile:
        self._catalog.file(store_id, file_id)
        with self._catalog.write() as conn:
            conn.execute("UPDATE store_files SET attributes = ? WHERE store_id = ? AND file_id = ?",
                         (json.dumps(attributes), store_id, file_id))
        return self._catalog.file(store_id, file_id)

    # ---- the vector index ----------------------------------------------------------------------------------

    def checkpoint(self, store_id: str) -> None:
        """Write the store's index to disk now if anything changed since the last checkpoint."""
        self._indexes.maybe_checkpoint(store_id, force=True)

    def warm(self, store_id: str) -> None:
        """Load the store's indexes now, rather than on first queries, and let pending keyword merges finish."""
        self._indexes.get(store_id).keyword.wait()

    # ---- search --------------------------------------------------------------------------------------------

    def search(self, store_ids: list[str], query: str, *, k: int = 10, mode: SearchMode = "hybrid",
               filters: dict[str, Any] | None = None, score_threshold: float = 0.0,
               candidates: int | None = None, query_vector: np.ndarray | None = None) -> list[Hit]:
        """The `k` best chunks for `query` across the stores, best first (`query_vector`: already embedded)."""
        if not 1 <= k <= 1000:
            raise InvalidRequest("k must be between 1 and 1000.", "max_num_results")
        if mode not in ("dense", "keyword", "hybrid"):
            raise InvalidRequest(f"Unknown search mode '{mode}'.", "mode")
        if filters is not None:
            attribute_filters.validate(filters)
        depth = candidates or max(50, 4 * k)
        dense: list[tuple[int, float]] = []
        keyword: list[tuple[int, float]] = []
        if mode != "keyword" and query_vector is None:
            query_vector = embed_texts(self.embedder, [query])[0]
        elif mode == "keyword":
            query_vector = None
        terms = sorted(set(self._keyword.analyzer.terms(query))) if mode != "dense" else []
        for store_id in store_ids:
            self._indexes.refresh(store_id)
            allowed = self._allowed_chunks(store_id, filters) if filters is not None else None
            loaded = self._indexes.get(store_id)
            if query_vector is not None:
                dense += loaded.index.search(query_vector, depth, None if allowed is None else
                                             np.fromiter(allowed, dtype=np.int64))
            if terms:
                keyword += loaded.keyword.search(terms, depth, allowed)
        for store_id in store_ids:
            self._catalog.touch(store_id)
        ranked = [hit for hit in rank(mode, dense, keyword, self.dense_weight, depth) if hit.score >= score_threshold]
        return distinct(self._catalog.hits(ranked[:3 * k]))[:k]

    def _allowed_chunks(self, store_id: str, spec: dict[str, Any]) -> set[int]:
        return self._catalog.chunk_ids(store_id, [f.file_id for f in self._catalog.files(store_id, status="completed")
                                                  if attribute_filters.matches(spec, f.attributes)])

