"""/v1/assistants: create, list, retrieve, update and delete assistants (openai.types.beta.Assistant)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from orchestrator.api.assistant_schemas import AssistantCreate, AssistantUpdate, resources_of
from orchestrator.api.deps import AssistantsDep
from orchestrator.api.openai_shapes import Assistant, shaped
from orchestrator.api.ownership import owned_path, require_resources
from orchestrator.api.schemas import Deleted, page_of
from orchestrator.db import PageRequest
from orchestrator.web.auth import CallerDep, OwnersDep

router = APIRouter(prefix="/assistants", tags=["assistants"], dependencies=[owned_path("assistant_id")])
Limit = Annotated[int, Query(ge=1, le=100)]


@router.post("", **shaped(Assistant))
async def create_assistant(body: AssistantCreate, assistants: AssistantsDep, caller: CallerDep,
                           owners: OwnersDep) -> dict[str, Any]:
    resources = resources_of(body.tool_resources)
    require_resources(caller, owners, resources)
    return assistants.create_assistant({**body.fields(), "model": body.model}, resources, caller.project)


@router.get("", **shaped(Assistant, listed=True))
async def list_assistants(assistants: AssistantsDep, caller: CallerDep, limit: Limit = 20,
                          order: Literal["asc", "desc"] = "desc", after: str | None = None,
                          before: str | None = None) -> dict[str, Any]:
    items, has_more = assistants.objects.page("assistants", PageRequest(limit, order, after, before),
                                              scope=caller.scope)
    return page_of(items, has_more)


@router.get("/{assistant_id}", **shaped(Assistant))
async def retrieve_assistant(assistant_id: str, assistants: AssistantsDep) -> dict[str, Any]:
    return assistants.objects.get("assistants", assistant_id)


@router.post("/{assistant_id}", **shaped(Assistant))
async def update_assistant(assistant_id: str, body: AssistantUpdate, assistants: AssistantsDep, caller: CallerDep,
                           owners: OwnersDep) -> dict[str, Any]:
    fields = body.fields()
    if body.model is None:
        fields.pop("model", None)
    resources = resources_of(body.tool_resources)
    require_resources(caller, owners, resources)
    return assistants.update_assistant(assistant_id, fields, resources)


@router.delete("/{assistant_id}", response_model=Deleted)
async def delete_assistant(assistant_id: str, assistants: AssistantsDep) -> Deleted:
    assistants.objects.delete("assistants", assistant_id)
    return Deleted(id=assistant_id, object="assistant.deleted")
