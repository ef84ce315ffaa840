"""/v1/files: upload, list, retrieve, delete and download stored files."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from orchestrator.api.deps import Config, Files, VectorStoresDep
from orchestrator.api.ownership import owned_path
from orchestrator.api.schemas import Deleted, FileObject, ListPage, page_of
from orchestrator.db import PageRequest
from orchestrator.services.storage import FileTooLarge, media_type
from orchestrator.web.auth import CallerDep
from orchestrator.web.errors import APIError

router = APIRouter(prefix="/files", tags=["files"], dependencies=[owned_path("file_id")])
PURPOSES = {"assistants", "assistants_output", "batch", "batch_output", "fine-tune", "fine-tune-results",
            "vision", "user_data", "evals"}


@router.post("", response_model=FileObject)
async def create_file(request: Request, store: Files, config: Config, caller: CallerDep,
                      file: Annotated[UploadFile, File()], purpose: Annotated[str, Form()]) -> FileObject:
    if purpose not in PURPOSES:
        raise APIError(400, f"Invalid purpose '{purpose}'. Expected one of {sorted(PURPOSES)}.", param="purpose")
    limit = config.max_upload_bytes
    if int(request.headers.get("content-length") or 0) > limit + (1 << 20):
        raise FileTooLarge(limit)
    stored = await run_in_threadpool(store.write, file.file, file.filename or "upload", purpose,
                                     project=caller.project, max_bytes=limit)
    return FileObject.of(stored)


@router.get("", response_model=ListPage[FileObject])
async def list_files(store: Files, caller: CallerDep, purpose: str | None = None, after: str | None = None,
                     before: str | None = None,
                     limit: Annotated[int, Query(ge=1, le=10000)] = 10000,
                     order: Literal["asc", "desc"] = "desc") -> dict:
    items, has_more = store.page(PageRequest(limit, order, after, before), scope=caller.scope, purpose=purpose)
    return page_of([FileObject.of(f) for f in items], has_more)


@router.get("/{file_id}", response_model=FileObject)
async def retrieve_file(file_id: str, store: Files) -> FileObject:
    return FileObject.of(store.get(file_id))


@router.delete("/{file_id}", response_model=Deleted)
async def delete_file(file_id: str, store: Files, vector_stores: VectorStoresDep) -> Deleted:
    """The file leaves every vector store that indexed it first (so it is no longer searchable, and the stores'
    file_counts stay true); its citations go with the file."""
    store.get(file_id)
    await vector_stores.forget_file(file_id)
    await run_in_threadpool(store.delete, file_id)  # a bucket's delete is a network call
    return Deleted(id=file_id, object="file")


# Plain `def`: with the bytes in a bucket, the local copy may have to be fetched first, off the event loop.
@router.get("/{file_id}/content")
def file_content(file_id: str, store: Files) -> FileResponse:
    stored = store.get(file_id)
    return FileResponse(store.blob_path(file_id), filename=stored.filename, media_type=media_type(stored.filename))

