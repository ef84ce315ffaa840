"""/v1/containers/{id}/files: the OpenAI Container Files API over a sandbox's /mnt/data."""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from orchestrator.api.deps import Config, ContainerFilesDep, Manager
from orchestrator.api.ownership import owned_path, require
from orchestrator.api.schemas import ContainerFileCopy, ContainerFileObject, Deleted, ListPage, page_of
from orchestrator.db import PageRequest
from orchestrator.services.storage import FileTooLarge, limit_size, media_type
from orchestrator.web.auth import CallerDep, OwnersDep
from orchestrator.web.errors import APIError

router = APIRouter(prefix="/containers/{container_id}/files", tags=["container files"],
                   dependencies=[owned_path("container_id")])


@router.post("", response_model=ContainerFileObject)
async def create_container_file(container_id: str, request: Request, manager: Manager,
                                container_files: ContainerFilesDep, config: Config, caller: CallerDep,
                                owners: OwnersDep) -> ContainerFileObject:
    """A multipart upload (`file`), or JSON `{"file_id"}` to copy a Files-API file in."""
    await manager.get(container_id)
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        limit = config.max_upload_bytes
        if int(request.headers.get("content-length") or 0) > limit + (1 << 20):
            raise FileTooLarge(limit)
        form = await request.form(max_files=1)
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise APIError(400, "Send the file as the multipart field 'file', or JSON {\"file_id\": ...}.",
                           param="file")
        chunks = limit_size(iter(lambda: upload.file.read(1 << 20), b""), limit)
        record = await container_files.upload(container_id, upload.filename or "upload", chunks)
    else:
        try:
            body = ContainerFileCopy.model_validate_json(await request.body())
        except ValidationError as exc:
            raise RequestValidationError(exc.errors()) from exc
        require(caller, owners, file_ids=[body.file_id])
        record = await container_files.copy_in(container_id, body.file_id)
    return ContainerFileObject.of(record)


@router.get("", response_model=ListPage[ContainerFileObject])
async def list_container_files(container_id: str, manager: Manager, container_files: ContainerFilesDep,
                               after: str | None = None, before: str | None = None,
                               limit: Annotated[int, Query(ge=1, le=100)] = 20,
                               order: Literal["asc", "desc"] = "desc") -> dict:
    await manager.get(container_id)
    items, has_more = container_files.store.page(container_id, PageRequest(limit, order, after, before))
    return page_of([ContainerFileObject.of(f) for f in items], has_more)


@router.get("/{file_id}", response_model=ContainerFileObject)
async def retrieve_container_file(container_id: str, file_id: str, manager: Manager,
                                  container_files: ContainerFilesDep) -> ContainerFileObject:
    await manager.get(container_id)
    return ContainerFileObject.of(container_files.store.get(container_id, file_id))


@router.delete("/{file_id}", response_model=Deleted)
async def delete_container_file(container_id: str, file_id: str, manager: Manager,
                                container_files: ContainerFilesDep) -> Deleted:
    await manager.get(container_id)
    await container_files.delete(container_id, file_id)
    return Deleted(id=file_id, object="container.file.deleted")


@router.get("/{file_id}/content")
async def container_file_content(container_id: str, file_id: str, manager: Manager,
                                 container_files: ContainerFilesDep) -> StreamingResponse:
    """The file's current bytes, streamed from the sandbox's disk."""
    await manager.get(container_id)
    record, chunks = await container_files.open(container_id, file_id)
    name = record.path.rsplit("/", 1)[-1]
    return StreamingResponse(chunks, media_type=media_type(name), headers={"Content-Disposition": _attachment(name)})


def _attachment(name: str) -> str:
    return f"attachment; filename*=utf-8''{quote(name)}"
