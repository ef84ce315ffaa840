"""Conversations: a project's stored lists of items that responses read from and append to."""

from __future__ import annotations

import time
from typing import Any

from orchestrator.db import PageRequest
from orchestrator.errors import InvalidRequest
from orchestrator.responses.context import ContextBuilder
from orchestrator.responses.items import normalize
from orchestrator.responses.shapes import present
from orchestrator.responses.store import ResponseStore
from orchestrator.services.projects import Caller
from retrieval.ids import new_id

MAX_ITEMS = 20  # OpenAI's cap on the items one request adds


class Conversations:
    def __init__(self, store: ResponseStore, context: ContextBuilder) -> None:
        self._store = store
        self._context = context

    def create(self, items: list[dict[str, Any]] | None, metadata: dict[str, str] | None,
               caller: Caller) -> dict[str, Any]:
        stored = self._items(items or [], caller)
        conversation = {"id": new_id("conv_", 24), "object": "conversation", "created_at": int(time.time()),
                        "metadata": metadata or {}}
        self._store.insert_conversation(conversation, stored, caller.project)
        return conversation

    def get(self, conversation_id: str) -> dict[str, Any]:
        return self._store.conversation(conversation_id)

    def update(self, conversation_id: str, metadata: dict[str, str] | None) -> dict[str, Any]:
        conversation = {**self._store.conversation(conversation_id), "metadata": metadata or {}}
        self._store.replace_conversation(conversation)
        return conversation

    def delete(self, conversation_id: str) -> dict[str, Any]:
        self._store.delete_conversation(conversation_id)
        return {"id": conversation_id, "object": "conversation.deleted", "deleted": True}

    def add(self, conversation_id: str, items: list[dict[str, Any]], include: frozenset[str],
            caller: Caller) -> dict[str, Any]:
        stored = self._items(items, caller)
        self._store.add_items(conversation_id, stored)
        return listing(present(stored, include), False)

    def page(self, conversation_id: str, page: PageRequest, include: frozenset[str]) -> dict[str, Any]:
        items, more = self._store.item_page(conversation_id, page)
        return listing(present(items, include), more)

    def item(self, conversation_id: str, item_id: str, include: frozenset[str]) -> dict[str, Any]:
        shown: dict[str, Any] = present(self._store.item(conversation_id, item_id), include)
        return shown

    def delete_item(self, conversation_id: str, item_id: str) -> dict[str, Any]:
        self._store.delete_item(conversation_id, item_id)
        return self._store.conversation(conversation_id)

    def _items(self, items: list[dict[str, Any]], caller: Caller) -> list[dict[str, Any]]:
        if len(items) > MAX_ITEMS:
            raise InvalidRequest(f"Invalid 'items': array too long. Expected an array with maximum length {MAX_ITEMS}, "
                                 f"but got an array with length {len(items)} instead.", param="items",
                                 code="array_above_max_length")
        stored = normalize(items)
        if any(item["type"] == "item_reference" for item in stored):
            raise InvalidRequest("A conversation takes items, not references to them.", param="items")
        for item in stored:
            self._context.check_files(item, caller)
        return stored


def listing(data: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    return {"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None, "has_more": has_more}
