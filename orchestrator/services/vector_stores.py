"""The vector-stores service: the one way the API, the tools and start-up reach the retrieval engine.

It checks ids before anything changes (every file of a batch exists before one is attached), queues attached
files for background ingestion, records search metrics once, and runs blocking engine work off the event loop.
"""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass, field
from typing import Any

from orchestrator.metrics import SEARCH_SECONDS, SEARCHES
from orchestrator.services.ingestion import IngestionQueue
from orchestrator.services.ingestion_leases import IngestionLeases
from orchestrator.services.projects import Owners
from orchestrator.services.storage import FileStore
from retrieval.models import Batch, ChunkingStrategy, Hit, IndexedChunk, SearchMode, Store, StoreFile
from retrieval.sqlite import PageRequest
from retrieval.vector_store import VectorStoreEngine


@dataclass(frozen=True)
class Attachment:
    """A file to attach to a store, with its attributes and chunking (None: the default)."""

    file_id: str
    attributes: dict[str, Any] = field(default_factory=dict)
    chunking: ChunkingStrategy | None = None


class VectorStores:
    def __init__(self, engine: VectorStoreEngine, files: FileStore, owners: Owners, leases: IngestionLeases) -> None:
        self._engine = engine
        self._files = files
        self._owners = owners
        self._ingestion = IngestionQueue(engine, files, leases)
        self._warming: asyncio.Task[Any] | None = None

    def start(self) -> int:
        """Start ingestion (re-queueing files a stop interrupted; returns how many). With stores to serve, the
        embedding model loads now in the background, so the first search does not wait seconds for it; a
        server used only for code execution never pays for torch. Stores made before projects existed join the
        default project."""
        self._owners.adopt([store.id for store in self._engine.stores()])
        if self._engine.has_stores():
            self._warming = asyncio.create_task(asyncio.to_thread(lambda: self._engine.embedder))
        return self._ingestion.start()

    def status(self) -> dict[str, Any]:
        """What /health says of retrieval: the embedding model loaded or not, files waiting, free disk."""
        return {"model_loaded": self._engine.model_loaded, "model": self._engine.model_name,
                "backlog": self._ingestion.backlog, "free_disk_bytes": shutil.disk_usage(self._files.root).free}

    async def close(self) -> None:
        await self._ingestion.close()
        if self._warming is not None:
            self._warming.cancel()
        self._engine.close()

    # ---- stores --------------------------------------------------------------------------------------------

    def create(self, name: str, *, project: str, attachments: list[Attachment], metadata: dict[str, str] | None,
               expires_after_days: int | None, description: str | None) -> Store:
        for attachment in attachments:
            self._files.get(attachment.file_id)
        store = self._engine.create_store(name, metadata=metadata, expires_after_days=expires_after_days,
                                          description=description)
        self._owners.claim(project, store.id)
        self.attach(store.id, attachments)
        return self._engine.store(store.id)

    def get(self, store_id: str) -> Store:
        return self._engine.store(store_id)

    def page(self, page: PageRequest, scope: str | None) -> tuple[list[Store], bool]:
        """One page of stores: of one project's when `scope` names it."""
        return self._engine.store_page(page, None if scope is None else self._owners.ids(scope, "vs_"))

    def update(self, store_id: str, changes: dict[str, Any]) -> Store:
        if changes:
            self._engine.update_store(store_id, **changes)
        return self._engine.store(store_id)

    async def delete(self, store_id: str) -> None:
        await asyncio.to_thread(self._engine.delete_store, store_id)
        self._owners.forget(store_id)

    # ---- files and batches ---------------------------------------------------------------------------------

    def attach(self, store_id: str, attachments: list[Attachment], batch_id: str | None = None) -> list[StoreFile]:
        """Attach files (each checked to exist before any is attached) and queue them for indexing."""
        self._engine.require(store_id)
        stored = [self._files.get(attachment.file_id) for attachment in attachments]
        records = [self._engine.attach(store_id, item.id, item.filename, attributes=attachment.attributes,
                                       chunking=attachment.chunking, batch_id=batch_id)
                   for item, attachment in zip(stored, attachments, strict=True)]
        self._ingestion.enqueue(store_id, [r.file_id for r in records if r.status == "in_progress"])
        return records

    def file(self, store_id: str, file_id: str) -> StoreFile:
        return self._engine.file(store_id, file_id)

    def file_page(self, store_id: str, page: PageRequest, *, status: str | None = None,
                  batch_id: str | None = None) -> tuple[list[StoreFile], bool]:
        self._engine.require(store_id)
        if batch_id is not None:
            self._engine.batch(store_id, batch_id)
        return self._engine.file_page(store_id, page, status=status, batch_id=batch_id)

    def update_attributes(self, store_id: str, file_id: str, attributes: dict[str, Any]) -> StoreFile:
        return self._engine.update_attributes(store_id, file_id, attributes)

    async def detach(self, store_id: str, file_id: str) -> None:
        await asyncio.to_thread(self._engine.remove_file, store_id, file_id)

    async def forget_file(self, file_id: str) -> list[str]:
        """Detach a file from every store that indexed it (before the file itself is deleted); returns the
        stores."""
        stores = self._engine.stores_with_file(file_id)
        for store_id in stores:
            await self.detach(store_id, file_id)
        return stores

    def stores_with_file(self, file_id: str) -> list[str]:
        return self._engine.stores_with_file(file_id)

    def chunks(self, store_id: str, file_id: str) -> list[IndexedChunk]:
        return self._engine.chunks(store_id, file_id)

    def create_batch(self, store_id: str, attachments: list[Attachment]) -> Batch:
        self._engine.require(store_id)
        for attachment in attachments:
            self._files.get(attachment.file_id)
        batch_id = self._engine.create_batch(store_id)
        self.attach(store_id, attachments, batch_id)
        return self._engine.batch(store_id, batch_id)

    def batch(self, store_id: str, batch_id: str) -> Batch:
        return self._engine.batch(store_id, batch_id)

    def cancel_batch(self, store_id: str, batch_id: str) -> Batch:
        self._engine.cancel_batch(store_id, batch_id)
        return self._engine.batch(store_id, batch_id)

    # ---- search --------------------------------------------------------------------------------------------

    async def search(self, store_ids: list[str], query: str, *, k: int, mode: SearchMode = "hybrid",
                     filters: dict[str, Any] | None = None, score_threshold: float = 0.0) -> list[Hit]:
        """The best `k` passages across the stores (each checked to exist first)."""
        for store_id in store_ids:
            self._engine.require(store_id)
        with SEARCH_SECONDS.time():
            hits = await asyncio.to_thread(self._engine.search, store_ids, query, k=k, mode=mode, filters=filters,
                                           score_threshold=score_threshold)
        SEARCHES.labels(mode).inc()
        return hits
