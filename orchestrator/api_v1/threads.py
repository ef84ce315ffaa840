"""v1 /threads, /threads/{id}/messages and /threads/{id}/messages/{id}/files: a message's `file_ids` are its v2
attachments, each for both of v1's file tools (searched, and in the sandbox)."""

from __future__ import annotations

import contextlib
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from orchestrator.api_v1 import shapes
from orchestrator.api_v1.route import V1Route, owned_path, page_of, paginate, require
from orchestrator.api_v1.schemas import MessageCreate, MetadataUpdate, ThreadCreate
from orchestrator.assistants.hosted import SCOPE
from orchestrator.assistants.service import Resources
from orchestrator.db import PageRequest
from orchestrator.errors import NotFound
from orchestrator.sandbox import EngineUnavailable
from orchestrator.web.auth import CallerDep, OwnersDep, ServicesDep

router = APIRouter(prefix="/threads", tags=["threads v1"], route_class=V1Route, include_in_schema=False,
                   dependencies=[owned_path("thread_id")])
Limit = Annotated[int, Query(ge=1, le=100)]
Order = Literal["asc", "desc"]


class MessageFileNotFound(NotFound):
    def __init__(self, message_id: str, file_id: str) -> None:
        super().__init__(f"No file found with id '{file_id}' on message '{message_id}'.")


@router.post("")
async def create_thread(services: ServicesDep, caller: CallerDep, owners: OwnersDep,
                        body: ThreadCreate | None = None) -> dict[str, Any]:
    body = body or ThreadCreate()
    messages = body.messages or []
    require(caller, owners, "file_id", [f for message in messages for f in message.file_ids])
    created = services.assistants.create_thread(Resources(), body.metadata, [m.pair() for m in messages],
                                                caller.project)
    return shapes.thread(created)


@router.get("/{thread_id}")
async def retrieve_thread(thread_id: str, services: ServicesDep) -> dict[str, Any]:
    return shapes.thread(services.assistants.objects.get("threads", thread_id))


@router.post("/{thread_id}")
async def update_thread(thread_id: str, body: MetadataUpdate, services: ServicesDep) -> dict[str, Any]:
    return shapes.thread(services.assistants.update_thread(thread_id, Resources(), body.metadata))


@router.delete("/{thread_id}")
async def delete_thread(thread_id: str, services: ServicesDep) -> dict[str, Any]:
    services.assistants.objects.delete("threads", thread_id)
    if services.sandboxes is not None:  # the thread's sandbox goes with it, as through v2
        with contextlib.suppress(EngineUnavailable):
            await services.sandboxes.bindings.release(SCOPE, thread_id)
    return {"id": thread_id, "object": "thread.deleted", "deleted": True}


# ---- messages ---------------------------------------------------------------------------------------------------

@router.post("/{thread_id}/messages")
async def create_message(thread_id: str, body: MessageCreate, services: ServicesDep, caller: CallerDep,
                         owners: OwnersDep) -> dict[str, Any]:
    require(caller, owners, "file_id", body.file_ids)
    return shapes.message(services.assistants.create_message(thread_id, *body.pair()))


@router.get("/{thread_id}/messages")
async def list_messages(thread_id: str, services: ServicesDep, limit: Limit = 20, order: Order = "desc",
                        after: str | None = None, before: str | None = None) -> dict[str, Any]:
    items, has_more = services.assistants.messages(thread_id, PageRequest(limit, order, after, before), None)
    return page_of([shapes.message(item) for item in items], has_more)


@router.get("/{thread_id}/messages/{message_id}")
async def retrieve_message(thread_id: str, message_id: str, services: ServicesDep) -> dict[str, Any]:
    return shapes.message(services.assistants.objects.get("messages", message_id, thread_id=thread_id))


@router.post("/{thread_id}/messages/{message_id}")
async def update_message(thread_id: str, message_id: str, body: MetadataUpdate,
                         services: ServicesDep) -> dict[str, Any]:
    objects = services.assistants.objects
    message = objects.get("messages", message_id, thread_id=thread_id)
    return shapes.message(objects.replace("messages", {**message, "metadata": body.metadata or {}}))


@router.get("/{thread_id}/messages/{message_id}/files")
async def list_message_files(thread_id: str, message_id: str, services: ServicesDep, limit: Limit = 20,
                             order: Order = "desc", after: str | None = None,
                             before: str | None = None) -> dict[str, Any]:
    message = services.assistants.objects.get("messages", message_id, thread_id=thread_id)
    files = [shapes.message_file(message, file_id) for file_id in shapes.message_file_ids(message)]
    return paginate(files, limit, order, after, before)


@router.get("/{thread_id}/messages/{message_id}/files/{file_id}")
async def retrieve_message_file(thread_id: str, message_id: str, file_id: str,
                                services: ServicesDep) -> dict[str, Any]:
    message = services.assistants.objects.get("messages", message_id, thread_id=thread_id)
    if file_id not in shapes.message_file_ids(message):
        raise MessageFileNotFound(message_id, file_id)
    return shapes.message_file(message, file_id)
