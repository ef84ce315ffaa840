"""v1 /assistants and /assistants/{id}/files: the stored assistants, their `file_ids` kept as code_interpreter
files and, while `retrieval` is on, in the vector store Toolshed keeps for them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from orchestrator.api_v1 import shapes
from orchestrator.api_v1.route import ManagedStoresDep, V1Route, owned_path, page_of, paginate, require
from orchestrator.api_v1.schemas import AssistantCreate, AssistantFileCreate, AssistantUpdate
from orchestrator.assistants.managed_stores import file_ids_of
from orchestrator.assistants.service import MAX_CODE_FILES, Resources
from orchestrator.db import PageRequest
from orchestrator.errors import InvalidRequest, NotFound
from orchestrator.services.storage import FileNotFound, FileStore
from orchestrator.web.auth import CallerDep, OwnersDep, ServicesDep

router = APIRouter(prefix="/assistants", tags=["assistants v1"], route_class=V1Route, include_in_schema=False,
                   dependencies=[owned_path("assistant_id")])
Limit = Annotated[int, Query(ge=1, le=100)]
Order = Literal["asc", "desc"]


class AssistantFileNotFound(NotFound):
    def __init__(self, assistant_id: str, file_id: str) -> None:
        super().__init__(f"No file found with id '{file_id}' on assistant '{assistant_id}'.")


@router.post("")
async def create_assistant(body: AssistantCreate, services: ServicesDep, caller: CallerDep, owners: OwnersDep,
                           managed: ManagedStoresDep) -> dict[str, Any]:
    require(caller, owners, "file_id", body.file_ids or [])
    created = services.assistants.create_assistant({**body.fields(), "model": body.model},
                                                   Resources(code_interpreter_file_ids=body.file_ids or []),
                                                   caller.project)
    return shapes.assistant(await managed.sync(created["id"]))


@router.get("")
async def list_assistants(services: ServicesDep, caller: CallerDep, limit: Limit = 20, order: Order = "desc",
                          after: str | None = None, before: str | None = None) -> dict[str, Any]:
    items, has_more = services.assistants.objects.page("assistants", PageRequest(limit, order, after, before),
                                                       scope=caller.scope)
    return page_of([shapes.assistant(item) for item in items], has_more)


@router.get("/{assistant_id}")
async def retrieve_assistant(assistant_id: str, services: ServicesDep) -> dict[str, Any]:
    return shapes.assistant(services.assistants.objects.get("assistants", assistant_id))


@router.post("/{assistant_id}")
async def update_assistant(assistant_id: str, body: AssistantUpdate, services: ServicesDep, caller: CallerDep,
                           owners: OwnersDep, managed: ManagedStoresDep) -> dict[str, Any]:
    require(caller, owners, "file_id", body.file_ids or [])
    fields = body.fields()
    if body.model is None:
        fields.pop("model", None)
    services.assistants.update_assistant(assistant_id, fields, Resources(code_interpreter_file_ids=body.file_ids))
    return shapes.assistant(await managed.sync(assistant_id))


@router.delete("/{assistant_id}")
async def delete_assistant(assistant_id: str, services: ServicesDep) -> dict[str, Any]:
    services.assistants.objects.delete("assistants", assistant_id)
    return {"id": assistant_id, "object": "assistant.deleted", "deleted": True}


# ---- assistant files --------------------------------------------------------------------------------------------

def _records(files: FileStore, assistant: dict[str, Any], file_ids: list[str]) -> list[dict[str, Any]]:
    """`assistant.file`s; each created_at is the file's own (when it was attached is not kept), the assistant's
    once the file is deleted."""
    records = []
    for file_id in file_ids:
        try:
            created_at = files.get(file_id).created_at
        except FileNotFound:
            created_at = assistant["created_at"]
        records.append({"id": file_id, "object": "assistant.file", "created_at": created_at,
                        "assistant_id": assistant["id"]})
    return records


@router.post("/{assistant_id}/files")
async def create_assistant_file(assistant_id: str, body: AssistantFileCreate, services: ServicesDep,
                                caller: CallerDep, owners: OwnersDep, managed: ManagedStoresDep) -> dict[str, Any]:
    require(caller, owners, "file_id", [body.file_id])
    file_ids = file_ids_of(services.assistants.objects.get("assistants", assistant_id))
    if body.file_id not in file_ids:
        if len(file_ids) >= MAX_CODE_FILES:
            raise InvalidRequest(f"An assistant takes at most {MAX_CODE_FILES} files.", param="file_id")
        services.assistants.update_assistant(assistant_id, {},
                                             Resources(code_interpreter_file_ids=[*file_ids, body.file_id]))
        await managed.sync(assistant_id)
    return _records(services.files, services.assistants.objects.get("assistants", assistant_id), [body.file_id])[0]


@router.get("/{assistant_id}/files")
async def list_assistant_files(assistant_id: str, services: ServicesDep, limit: Limit = 20, order: Order = "desc",
                               after: str | None = None, before: str | None = None) -> dict[str, Any]:
    assistant = services.assistants.objects.get("assistants", assistant_id)
    return paginate(_records(services.files, assistant, file_ids_of(assistant)), limit, order, after, before)


@router.get("/{assistant_id}/files/{file_id}")
async def retrieve_assistant_file(assistant_id: str, file_id: str, services: ServicesDep) -> dict[str, Any]:
    assistant = services.assistants.objects.get("assistants", assistant_id)
    if file_id not in file_ids_of(assistant):
        raise AssistantFileNotFound(assistant_id, file_id)
    return _records(services.files, assistant, [file_id])[0]


@router.delete("/{assistant_id}/files/{file_id}")
async def delete_assistant_file(assistant_id: str, file_id: str, services: ServicesDep,
                                managed: ManagedStoresDep) -> dict[str, Any]:
    file_ids = file_ids_of(services.assistants.objects.get("assistants", assistant_id))
    if file_id not in file_ids:
        raise AssistantFileNotFound(assistant_id, file_id)
    services.assistants.update_assistant(assistant_id, {}, Resources(
        code_interpreter_file_ids=[f for f in file_ids if f != file_id]))
    await managed.sync(assistant_id)
    return {"id": file_id, "object": "assistant.file.deleted", "deleted": True}
