"""/v1/threads and /v1/threads/{id}/messages (openai.types.beta.Thread and .threads.Message)."""

from __future__ import annotations

import contextlib
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from orchestrator.api.assistant_schemas import MessageCreate, MessageUpdate, ThreadCreate, ThreadUpdate, resources_of
from orchestrator.api.deps import AssistantsDep
from orchestrator.api.openai_shapes import Message, Thread, shaped
from orchestrator.api.ownership import owned_path, require_messages, require_resources
from orchestrator.api.schemas import Deleted, page_of
from orchestrator.assistants.hosted import SCOPE
from orchestrator.db import PageRequest
from orchestrator.sandbox import EngineUnavailable
from orchestrator.web.auth import CallerDep, OwnersDep, ServicesDep

router = APIRouter(prefix="/threads", tags=["threads"], dependencies=[owned_path("thread_id")])
Limit = Annotated[int, Query(ge=1, le=100)]


@router.post("", **shaped(Thread))
async def create_thread(assistants: AssistantsDep, caller: CallerDep, owners: OwnersDep,
                        body: ThreadCreate | None = None) -> dict[str, Any]:
    body = body or ThreadCreate()
    messages = [(message.fields(), message.attachment_list()) for message in body.messages or []]
    resources = resources_of(body.tool_resources)
    require_resources(caller, owners, resources)
    require_messages(caller, owners, messages)
    return assistants.create_thread(resources, body.metadata, messages, caller.project)


@router.get("/{thread_id}", **shaped(Thread))
async def retrieve_thread(thread_id: str, assistants: AssistantsDep) -> dict[str, Any]:
    return assistants.objects.get("threads", thread_id)


@router.post("/{thread_id}", **shaped(Thread))
async def update_thread(thread_id: str, body: ThreadUpdate, assistants: AssistantsDep, caller: CallerDep,
                        owners: OwnersDep) -> dict[str, Any]:
    resources = resources_of(body.tool_resources)
    require_resources(caller, owners, resources)
    return assistants.update_thread(thread_id, resources, body.metadata)


@router.delete("/{thread_id}", response_model=Deleted)
async def delete_thread(thread_id: str, assistants: AssistantsDep, services: ServicesDep) -> Deleted:
    assistants.objects.delete("threads", thread_id)
    if services.sandboxes is not None:  # the thread's sandbox (its runs' code_interpreter) goes with it
        # With the engine down the thread is gone all the same: the orphan sweep removes the container later.
        with contextlib.suppress(EngineUnavailable):
            await services.sandboxes.bindings.release(SCOPE, thread_id)
    return Deleted(id=thread_id, object="thread.deleted")


# ---- messages ---------------------------------------------------------------------------------------------------

@router.post("/{thread_id}/messages", **shaped(Message))
async def create_message(thread_id: str, body: MessageCreate, assistants: AssistantsDep, caller: CallerDep,
                         owners: OwnersDep) -> dict[str, Any]:
    fields, attachments = body.fields(), body.attachment_list()
    require_messages(caller, owners, [(fields, attachments)])
    return assistants.create_message(thread_id, fields, attachments)


@router.get("/{thread_id}/messages", **shaped(Message, listed=True))
async def list_messages(thread_id: str, assistants: AssistantsDep, limit: Limit = 20,
                        order: Literal["asc", "desc"] = "desc", after: str | None = None, before: str | None = None,
                        run_id: str | None = None) -> dict[str, Any]:
    items, has_more = assistants.messages(thread_id, PageRequest(limit, order, after, before), run_id)
    return page_of(items, has_more)


@router.get("/{thread_id}/messages/{message_id}", **shaped(Message))
async def retrieve_message(thread_id: str, message_id: str, assistants: AssistantsDep) -> dict[str, Any]:
    return assistants.objects.get("messages", message_id, thread_id=thread_id)


@router.post("/{thread_id}/messages/{message_id}", **shaped(Message))
async def update_message(thread_id: str, message_id: str, body: MessageUpdate,
                         assistants: AssistantsDep) -> dict[str, Any]:
    message = assistants.objects.get("messages", message_id, thread_id=thread_id)
    return assistants.objects.replace("messages", {**message, "metadata": body.metadata or {}})


@router.delete("/{thread_id}/messages/{message_id}", response_model=Deleted)
async def delete_message(thread_id: str, message_id: str, assistants: AssistantsDep) -> Deleted:
    assistants.objects.delete("messages", message_id, thread_id=thread_id)
    return Deleted(id=message_id, object="thread.message.deleted")
