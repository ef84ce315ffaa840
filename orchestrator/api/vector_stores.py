"""/v1/vector_stores: the OpenAI Vector Stores API (stores, files, file batches, search) over the retrieval engine."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from starlette.concurrency import run_in_threadpool

from orchestrator.api.deps import Files, Ingestion, Retrieval
from orchestrator.api.schemas import Deleted, ListPage, TextContent, page_of, paginate
from orchestrator.api.vector_store_schemas import (
    BatchFile,
    FileBatchCreate,
    FileBatchObject,
    FileContentPage,
    SearchRequest,
    SearchResult,
    SearchResultsPage,
    VectorStoreCreate,
    VectorStoreFileCreate,
    VectorStoreFileObject,
    VectorStoreFileUpdate,
    VectorStoreObject,
    VectorStoreUpdate,
)
from orchestrator.metrics import SEARCH_SECONDS, SEARCHES

router = APIRouter(prefix="/vector_stores", tags=["vector stores"])
Order = Literal["asc", "desc"]
Limit = Annotated[int, Query(ge=1, le=100)]
Status = Literal["in_progress", "completed", "failed", "cancelled"]
# The SDK's *_and_poll helpers wait this long between polls (its default is a full second).
POLL_HEADERS = {"openai-poll-after-ms": "250"}


@router.post("", response_model=VectorStoreObject)
async def create_vector_store(body: VectorStoreCreate, engine: Retrieval, files: Files,
                              ingestion: Ingestion) -> VectorStoreObject:
    if body.chunking_strategy is not None:
        body.chunking_strategy.strategy()  # a bad strategy is a 400 before anything is created
    for file_id in body.file_ids:
        files.get(file_id)
    store = engine.create_store(body.name, metadata=body.metadata,
                                expires_after_days=body.expires_after.days if body.expires_after else None,
                                description=body.description)
    entries = [BatchFile(file_id=f, chunking_strategy=body.chunking_strategy) for f in body.file_ids]
    _attach(engine, files, ingestion, store.id, entries, None)
    return VectorStoreObject.of(engine.catalog.store(store.id))


@router.get("", response_model=ListPage[VectorStoreObject])
async def list_vector_stores(engine: Retrieval, limit: Limit = 20, order: Order = "desc", after: str | None = None,
                             before: str | None = None) -> dict:
    stores = [VectorStoreObject.of(s) for s in engine.catalog.stores()]
    items, has_more = paginate(stores, after=after, before=before, limit=limit, order=order)
    return page_of(items, has_more)


@router.get("/{store_id}", response_model=VectorStoreObject)
async def retrieve_vector_store(store_id: str, engine: Retrieval) -> VectorStoreObject:
    return VectorStoreObject.of(engine.catalog.store(store_id))


@router.post("/{store_id}", response_model=VectorStoreObject)
async def update_vector_store(store_id: str, body: VectorStoreUpdate, engine: Retrieval) -> VectorStoreObject:
    fields = body.changes()
    if fields:
        engine.catalog.update_store(store_id, **fields)
    return VectorStoreObject.of(engine.catalog.store(store_id))


@router.delete("/{store_id}", response_model=Deleted)
async def delete_vector_store(store_id: str, engine: Retrieval) -> Deleted:
    await run_in_threadpool(engine.delete_store, store_id)
    return Deleted(id=store_id, object="vector_store.deleted")


@router.post("/{store_id}/search", response_model=SearchResultsPage)
async def search_vector_store(store_id: str, body: SearchRequest, engine: Retrieval) -> SearchResultsPage:
    engine.catalog.store_key(store_id)
    threshold = body.ranking_options.score_threshold if body.ranking_options else 0.0
    with SEARCH_SECONDS.time():
        hits = await run_in_threadpool(engine.search, [store_id], body.text(), k=body.max_num_results,
                                       mode=body.mode(), filters=body.filters, score_threshold=threshold)
    SEARCHES.labels(body.mode()).inc()
    queries = [body.query] if isinstance(body.query, str) else body.query
    return SearchResultsPage(search_query=queries, data=[SearchResult.of(hit) for hit in hits])


# ---- files ------------------------------------------------------------------------------------------------------

@router.post("/{store_id}/files", response_model=VectorStoreFileObject)
async def create_vector_store_file(store_id: str, body: VectorStoreFileCreate, engine: Retrieval, files: Files,
                                   ingestion: Ingestion) -> VectorStoreFileObject:
    [record] = _attach(engine, files, ingestion, store_id, [BatchFile(**body.model_dump())], None)
    return VectorStoreFileObject.of(record)


def _attach(engine: Retrieval, files: Files, ingestion: Ingestion, store_id: str, entries: list[BatchFile],
            batch_id: str | None) -> list:
    engine.catalog.store_key(store_id)
    strategies = [entry.chunking_strategy.strategy() if entry.chunking_strategy else None for entry in entries]
    stored = [files.get(entry.file_id) for entry in entries]  # every id checked before any is attached
    records = [engine.attach(store_id, item.id, item.filename, attributes=entry.attributes, chunking=strategy,
                             batch_id=batch_id)
               for item, entry, strategy in zip(stored, entries, strategies, strict=True)]
    ingestion.enqueue(store_id, [r.file_id for r in records if r.status == "in_progress"])
    return records


@router.get("/{store_id}/files", response_model=ListPage[VectorStoreFileObject])
async def list_vector_store_files(store_id: str, engine: Retrieval, limit: Limit = 20, order: Order = "desc",
                                  after: str | None = None, before: str | None = None,
                                  filter: Status | None = None) -> dict:
    engine.catalog.store_key(store_id)
    records = [VectorStoreFileObject.of(r) for r in engine.catalog.files(store_id, status=filter)]
    items, has_more = paginate(records, after=after, before=before, limit=limit, order=order)
    return page_of(items, has_more)


@router.get("/{store_id}/files/{file_id}", response_model=VectorStoreFileObject)
async def retrieve_vector_store_file(store_id: str, file_id: str, engine: Retrieval,
                                     response: Response) -> VectorStoreFileObject:
    record = engine.catalog.file(store_id, file_id)
    response.headers.update(POLL_HEADERS)
    return VectorStoreFileObject.of(record)


@router.post("/{store_id}/files/{file_id}", response_model=VectorStoreFileObject)
async def update_vector_store_file(store_id: str, file_id: str, body: VectorStoreFileUpdate,
                                   engine: Retrieval) -> VectorStoreFileObject:
    return VectorStoreFileObject.of(engine.update_attributes(store_id, file_id, body.attributes or {}))


@router.delete("/{store_id}/files/{file_id}", response_model=Deleted)
async def delete_vector_store_file(store_id: str, file_id: str, engine: Retrieval) -> Deleted:
    await run_in_threadpool(engine.remove_file, store_id, file_id)
    return Deleted(id=file_id, object="vector_store.file.deleted")


@router.get("/{store_id}/files/{file_id}/content", response_model=FileContentPage)
async def vector_store_file_content(store_id: str, file_id: str, engine: Retrieval) -> FileContentPage:
    return FileContentPage(data=[TextContent(text=c.text) for c in engine.chunks(store_id, file_id)])


# ---- file batches -----------------------------------------------------------------------------------------------

@router.post("/{store_id}/file_batches", response_model=FileBatchObject)
async def create_file_batch(store_id: str, body: FileBatchCreate, engine: Retrieval, files: Files,
                            ingestion: Ingestion) -> FileBatchObject:
    engine.catalog.store_key(store_id)
    batch_id = engine.catalog.create_batch(store_id)
    _attach(engine, files, ingestion, store_id, body.entries(), batch_id)
    return FileBatchObject.of(engine.catalog.batch(store_id, batch_id))


@router.get("/{store_id}/file_batches/{batch_id}", response_model=FileBatchObject)
async def retrieve_file_batch(store_id: str, batch_id: str, engine: Retrieval, response: Response) -> FileBatchObject:
    batch = engine.catalog.batch(store_id, batch_id)
    response.headers.update(POLL_HEADERS)
    return FileBatchObject.of(batch)


@router.post("/{store_id}/file_batches/{batch_id}/cancel", response_model=FileBatchObject)
async def cancel_file_batch(store_id: str, batch_id: str, engine: Retrieval) -> FileBatchObject:
    engine.catalog.cancel_batch(store_id, batch_id)
    return FileBatchObject.of(engine.catalog.batch(store_id, batch_id))


@router.get("/{store_id}/file_batches/{batch_id}/files", response_model=ListPage[VectorStoreFileObject])
async def list_file_batch_files(store_id: str, batch_id: str, engine: Retrieval, limit: Limit = 20,
                                order: Order = "desc", after: str | None = None, before: str | None = None,
                                filter: Status | None = None) -> dict:
    engine.catalog.batch(store_id, batch_id)
    records = [VectorStoreFileObject.of(r) for r in engine.catalog.files(store_id, status=filter, batch_id=batch_id)]
    items, has_more = paginate(records, after=after, before=before, limit=limit, order=order)
    return page_of(items, has_more)
