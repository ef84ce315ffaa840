"""/v1/conversations and their items (openai.types.conversations)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from orchestrator.db import PageRequest
from orchestrator.errors import NotFound
from orchestrator.responses.conversations import Conversations
from orchestrator.responses_api.params import IncludeBrackets, IncludePlain, Limit, Order, included
from orchestrator.responses_api.schemas import ConversationCreate, ConversationUpdate, ItemsCreate
from orchestrator.web.auth import CallerDep, OwnersDep, ServicesDep


async def conversations(services: ServicesDep) -> Conversations:
    return services.conversations


ConversationsDep = Annotated[Conversations, Depends(conversations)]


async def owned(conversation_id: str, caller: CallerDep, owners: OwnersDep) -> str:
    if not owners.sees(caller, conversation_id):
        raise NotFound(f"Conversation with id '{conversation_id}' not found.")
    return conversation_id


OwnedId = Annotated[str, Depends(owned)]
router = APIRouter(prefix="/conversations", tags=["conversations"])


@router.post("", response_model=None)
async def create_conversation(body: ConversationCreate, service: ConversationsDep,
                              caller: CallerDep) -> dict[str, Any]:
    return service.create(body.items, body.metadata, caller)


@router.get("/{conversation_id}", response_model=None)
async def retrieve_conversation(conversation_id: OwnedId, service: ConversationsDep) -> dict[str, Any]:
    return service.get(conversation_id)


@router.post("/{conversation_id}", response_model=None)
async def update_conversation(conversation_id: OwnedId, body: ConversationUpdate,
                              service: ConversationsDep) -> dict[str, Any]:
    return service.update(conversation_id, body.metadata)


@router.delete("/{conversation_id}", response_model=None)
async def delete_conversation(conversation_id: OwnedId, service: ConversationsDep) -> dict[str, Any]:
    return service.delete(conversation_id)


@router.post("/{conversation_id}/items", response_model=None)
async def create_items(conversation_id: OwnedId, body: ItemsCreate, service: ConversationsDep, caller: CallerDep,
                       include_brackets: IncludeBrackets = None, include: IncludePlain = None) -> dict[str, Any]:
    return service.add(conversation_id, body.items, included(include_brackets, include), caller)


@router.get("/{conversation_id}/items", response_model=None)
async def list_items(conversation_id: OwnedId, service: ConversationsDep, limit: Limit = 20, order: Order = "desc",
                     after: str | None = None, include_brackets: IncludeBrackets = None,
                     include: IncludePlain = None) -> dict[str, Any]:
    return service.page(conversation_id, PageRequest(limit, order, after), included(include_brackets, include))


@router.get("/{conversation_id}/items/{item_id}", response_model=None)
async def retrieve_item(conversation_id: OwnedId, item_id: str, service: ConversationsDep,
                        include_brackets: IncludeBrackets = None, include: IncludePlain = None) -> dict[str, Any]:
    return service.item(conversation_id, item_id, included(include_brackets, include))


@router.delete("/{conversation_id}/items/{item_id}", response_model=None)
async def delete_item(conversation_id: OwnedId, item_id: str, service: ConversationsDep) -> dict[str, Any]:
    return service.delete_item(conversation_id, item_id)
