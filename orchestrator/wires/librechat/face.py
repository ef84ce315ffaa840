"""LibreChat's Code API at /librechat/v1 (LibreChat's `LIBRECHAT_CODE_BASEURL`): exec, upload, download, file
listings and the freshness probe, with the request and response shapes of `@librechat/agents` and LibreChat's
upload code. Errors are `{"error": code, "message"}`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, StreamingResponse
from starlette.background import BackgroundTask

from orchestrator.errors import NotFound
from orchestrator.services.container import Services
from orchestrator.services.librechat_files import SessionFile
from orchestrator.services.storage import FileTooLarge, media_type
from orchestrator.web.auth import ServicesDep
from orchestrator.web.error_shape import shaped_route
from orchestrator.web.errors import APIError
from orchestrator.wires.librechat.auth import LibreChatCaller, librechat_caller
from orchestrator.wires.librechat.execute import (
    LANGUAGES,
    ExecRequest,
    LibreChatExec,
    new_session_id,
    stop,
    with_keepalive,
)


def librechat_error(_: int, message: str, code: str | None) -> dict[str, Any]:
    return {"error": code or "error", "message": message}


async def caller(request: Request, services: ServicesDep) -> LibreChatCaller:
    found = librechat_caller(services.keys, services.settings, request.headers)
    if found is None:
        raise APIError(401, "A valid API key (x-api-key, Basic or Bearer) or LibreChat JWT is required.",
                       code="unauthorized")
    return found


CallerDep = Annotated[LibreChatCaller, Depends(caller)]
# Not in /openapi.json: that document is the OpenAI face's; this wire is LibreChat's.
router = APIRouter(prefix="/librechat/v1", route_class=shaped_route(librechat_error), tags=["librechat"],
                   include_in_schema=False)


@router.post("/exec")
async def execute(body: ExecRequest, services: ServicesDep, who: CallerDep) -> StreamingResponse:
    if body.lang not in LANGUAGES:
        raise APIError(400, f"Language '{body.lang}' is not supported here; use py or bash.",
                       code="unsupported_language")
    executions = LibreChatExec(services)
    work = executions.start(await executions.prepare(who, body))
    return StreamingResponse(with_keepalive(work), media_type="application/json",
                             background=BackgroundTask(stop, work))


async def _store(services: Services, who: LibreChatCaller, upload: UploadFile, session_id: str) -> dict[str, str]:
    stored = await run_in_threadpool(services.files.write, upload.file, upload.filename or "upload", "assistants",
                                     project=who.caller.project, max_bytes=services.settings.max_upload_bytes)
    services.librechat_files.record(session_id, stored.id, stored.filename, who.user)
    return {"fileId": stored.id, "filename": stored.filename}


@router.post("/upload")
async def upload(file: Annotated[UploadFile, File()], services: ServicesDep, who: CallerDep) -> dict[str, Any]:
    session_id = new_session_id()
    stored = await _store(services, who, file, session_id)
    return {"message": "success", "storage_session_id": session_id, "session_id": session_id, "files": [stored]}


@router.post("/upload/batch")
async def upload_batch(file: Annotated[list[UploadFile], File()], services: ServicesDep,
                       who: CallerDep) -> dict[str, Any]:
    session_id, results = new_session_id(), []
    for part in file:
        try:
            results.append({"status": "success", **await _store(services, who, part, session_id)})
        except FileTooLarge as exc:
            results.append({"status": "error", "filename": part.filename or "upload", "error": str(exc)})
    succeeded = sum(r["status"] == "success" for r in results)
    return {"message": "success" if succeeded == len(results) else "partial", "storage_session_id": session_id,
            "session_id": session_id, "files": results, "succeeded": succeeded, "failed": len(results) - succeeded}


def _session_file(services: Services, who: LibreChatCaller, session_id: str, file_id: str) -> SessionFile:
    """The session's file, if the caller's user made that session and its project owns the file."""
    found = services.librechat_files.get(session_id, file_id, who.user)
    if found is None or not services.owners.sees(who.caller, file_id):
        raise NotFound(f"No file '{file_id}' in session '{session_id}'.")
    return found


def _modified(entry: SessionFile) -> str:
    return datetime.fromtimestamp(entry.created_at, UTC).isoformat()


# Plain `def`: with the bytes in a bucket, the local copy may have to be fetched first, off the event loop.
@router.get("/download/{session_id}/{file_id}")
def download(session_id: str, file_id: str, services: ServicesDep, who: CallerDep) -> FileResponse:
    entry = _session_file(services, who, session_id, file_id)
    return FileResponse(services.files.blob_path(file_id), media_type=media_type(entry.name),
                        filename=entry.name.rsplit("/", 1)[-1])


@router.get("/files/{session_id}")
async def list_files(session_id: str, services: ServicesDep, who: CallerDep,
                     detail: Literal["simple", "summary", "full"] = "simple") -> list[dict[str, Any]]:
    entries = [e for e in services.librechat_files.of_session(session_id, who.user)
               if services.owners.sees(who.caller, e.file_id)]
    if detail == "summary":
        return [{"name": f"{session_id}/{e.file_id}", "lastModified": _modified(e)} for e in entries]
    listed: list[dict[str, Any]] = [{"id": e.file_id, "name": e.name, "path": f"/mnt/data/{e.name}"}
                                    for e in entries]
    if detail == "full":
        for item, entry in zip(listed, entries, strict=True):
            item.update(size=services.files.get(entry.file_id).bytes, lastModified=_modified(entry),
                        etag=entry.file_id, contentType=media_type(entry.name), metadata={})
    return listed


@router.get("/sessions/{session_id}/objects/{file_id}")
async def object_info(session_id: str, file_id: str, services: ServicesDep, who: CallerDep) -> dict[str, Any]:
    entry = _session_file(services, who, session_id, file_id)
    return {"name": f"{session_id}/{file_id}", "filename": entry.name, "lastModified": _modified(entry),
            "size": services.files.get(file_id).bytes}


@router.delete("/files/{session_id}/{file_id}")
async def delete_file(session_id: str, file_id: str, services: ServicesDep, who: CallerDep) -> dict[str, str]:
    _session_file(services, who, session_id, file_id)
    await services.vector_stores.forget_file(file_id)  # as DELETE /v1/files: out of every store first
    await run_in_threadpool(services.files.delete, file_id)  # a bucket's delete is a network call
    return {"message": "success"}
