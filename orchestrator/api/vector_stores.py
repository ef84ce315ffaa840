"""/v1/vector_stores: the OpenAI Vector Stores API (stores, files, file batches, search) over the retrieval engine."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from orchestrator.api.deps import VectorStoresDep as Stores
from orchestrator.api.ownership import owned_path, require
from orchestrator.api.schemas import Deleted, ListPage, page_of
from orchestrator.api.vector_store_schemas import (
    BatchFile,
    ChunkContent,
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
from orchestrator.db import PageRequest
from orchestrator.services.vector_stores import Attachment
from orchestrator.web.auth import CallerDep, OwnersDep

router = APIRouter(prefix="/vector_stores", tags=["vector stores"], dependencies=[owned_path("store_id")])
Order = Literal["asc", "desc"]
Limit = Annotated[int, Query(ge=1, le=100)]
Status = Literal["in_progress", "completed", "failed", "cancelled"]
# The SDK's *_and_poll helpers wait this long between polls (its default is a full second).
POLL_HEADERS = {"openai-poll-after-ms": "250"}


@router.post("", response_model=VectorStoreObject)
async def create_vector_store(body: VectorStoreCreate, stores: Stores, caller: CallerDep,
                              owners: OwnersDep) -> VectorStoreObject:
    # The chunking strategy is checked (a bad one is a 400) before anything is created.
    strategy = body.chunking_strategy.strategy() if body.chunking_strategy else None
    attachments = [Attachment(file_id, chunking=strategy) for file_id in body.file_ids]
    require(caller, owners, file_ids=body.file_ids)
    return VectorStoreObject.of(stores.create(
        body.name, project=caller.project, attachments=attachments, metadata=body.metadata,
        description=body.description, expires_after_days=body.expires_after.days if body.expires_after else None))


@router.get("", response_model=ListPage[VectorStoreObject])
async def list_vector_stores(stores: Stores, caller: CallerDep, limit: Limit = 20, order: Order = "desc",
                             after: str | None = None, before: str | None = None) -> dict:
    items, has_more = stores.page(PageRequest(limit, order, after, before), caller.scope)
    return page_of([VectorStoreObject.of(s) for s in items], has_more)


@router.get("/{store_id}", response_model=VectorStoreObject)
async def retrieve_vector_store(store_id: str, stores: Stores) -> VectorStoreObject:
    return VectorStoreObject.of(stores.get(store_id))


@router.post("/{store_id}", response_model=VectorStoreObject)
async def update_vector_store(store_id: str, body: VectorStoreUpdate, stores: Stores) -> VectorStoreObject:
    return VectorStoreObject.of(stores.update(store_id, body.changes()))


@router.delete("/{store_id}", response_model=Deleted)
async def delete_vector_store(store_id: str, stores: Stores) -> Deleted:
    await stores.delete(store_id)
    return Deleted(id=store_id, object="vector_store.deleted")


@router.post("/{store_id}/search", response_model=SearchResultsPage)
async def search_vector_store(store_id: str, body: SearchRequest, stores: Stores) -> SearchResultsPage:
    threshold = body.ranking_options.score_threshold if body.ranking_options else 0.0
    hits = await stores.search([store_id], body.text(), k=body.max_num_results, mode=body.mode(),
                               filters=body.filters, score_threshold=threshold)
    queries = [body.query] if isinstance(body.query, str) else body.query
    return SearchResultsPage(search_query=queries, data=[SearchResult.of(hit) for hit in hits])


# ---- files ------------------------------------------------------------------------------------------------------

@router.post("/{store_id}/files", response_model=VectorStoreFileObject)
async def create_vector_store_file(store_id: str, body: VectorStoreFileCreate, stores: Stores, caller: CallerDep,
                                   owners: OwnersDep) -> VectorStoreFileObject:
    require(caller, owners, file_ids=[body.file_id])
    [record] = stores.attach(store_id, [BatchFile(**body.model_dump()).attachment()])
    return VectorStoreFileObject.of(record)


@router.get("/{store_id}/files", response_model=ListPage[VectorStoreFileObject])
async def list_vector_store_files(store_id: str, stores: Stores, limit: Limit = 20, order: Order = "desc",
                                  after: str | None = None, before: str | None = None,
                                  filter: Status | None = None) -> dict:
    items, has_more = stores.file_page(store_id, PageRequest(limit, order, after, before), status=filter)
    return page_of([VectorStoreFileObject.of(r) for r in items], has_more)


@router.get("/{store_id}/files/{file_id}", response_model=VectorStoreFileObject)
async def retrieve_vector_store_file(store_id: str, file_id: str, stores: Stores,
                                     response: Response) -> VectorStoreFileObject:
    record = stores.file(store_id, file_id)
    response.headers.update(POLL_HEADERS)
    return VectorStoreFileObject.of(record)


@router.post("/{store_id}/files/{file_id}", response_model=VectorStoreFileObject)
async def update_vector_store_file(store_id: str, file_id: str, body: VectorStoreFileUpdate,
                                   stores: Stores) -> VectorStoreFileObject:
    return VectorStoreFileObject.of(stores.update_attributes(store_id, file_id, body.attributes or {}))


@router.delete("/{store_id}/files/{file_id}", response_model=Deleted)
async def delete_vector_store_file(store_id: str, file_id: str, stores: Stores) -> Deleted:
    await stores.detach(store_id, file_id)
    return Deleted(id=file_id, object="vector_store.file.deleted")


@router.get("/{store_id}/files/{file_id}/content", response_model=FileContentPage)
async def vector_store_file_content(store_id: str, file_id: str, stores: Stores) -> FileContentPage:
    return FileContentPage(data=[ChunkContent(text=c.chunk.text, page=c.chunk.page, chunk_id=c.id)
                                 for c in stores.chunks(store_id, file_id)])


# ---- file batches -----------------------------------------------------------------------------------------------

@router.post("/{store_id}/file_batches", response_model=FileBatchObject)
async def create_file_batch(store_id: str, body: FileBatchCreate, stores: Stores, caller: CallerDep,
                            owners: OwnersDep) -> FileBatchObject:
    entries = body.entries()
    require(caller, owners, file_ids=[entry.file_id for entry in entries])
    return FileBatchObject.of(stores.create_batch(store_id, [entry.attachment() for entry in entries]))


@router.get("/{store_id}/file_batches/{batch_id}", response_model=FileBatchObject)
async def retrieve_file_batch(store_id: str, batch_id: str, stores: Stores, response: Response) -> FileBatchObject:
    batch = stores.batch(store_id, batch_id)
    response.headers.update(POLL_HEADERS)
    return FileBatchObject.of(batch)


@router.post("/{store_id}/file_batches/{batch_id}/cancel", response_model=FileBatchObject)
async def cancel_file_batch(store_id: str, batch_id: str, stores: Stores) -> FileBatchObject:
    return FileBatchObject.of(stores.cancel_batch(store_id, batch_id))


@router.get("/{store_id}/file_batches/{batch_id}/files", response_model=ListPage[VectorStoreFileObject])
async def list_file_batch_files(store_id: str, batch_id: str, stores: Stores, limit: Limit = 20,
                                order: Order = "desc", after: str | None = None, before: str | None = None,
                                filter: Status | None = None) -> dict:
    items, has_more = stores.file_page(store_id, PageRequest(limit, order, after, before), status=filter,
                                       batch_id=batch_id)
    return page_of([VectorStoreFileObject.of(r) for r in items], has_more)
