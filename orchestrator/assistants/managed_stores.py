"""The vector store Toolshed keeps behind an assistant's Assistants-v1 `file_ids` while its `retrieval` tool is
on: made on first need, kept holding exactly those files, seen by v2 as the assistant's file_search store.

A v1 assistant's files are its code_interpreter files (v1 has one list for both tools); this module only mirrors
them into a store, so `retrieval` (v2's `file_search`) searches the same files. A store the caller chose through
v2 is added to, never emptied: only a store marked as Toolshed's loses files that left the list.
"""

from __future__ import annotations

from typing import Any

from orchestrator.assistants.service import Assistants
from orchestrator.db import PageRequest
from orchestrator.services.vector_stores import Attachment
from retrieval.errors import StoreNotFound

# The mark on the stores made here, in their metadata.
MANAGED = {"toolshed": "assistants-v1 files"}
_ALL = PageRequest(limit=10_000, order="asc")


def file_ids_of(assistant: dict[str, Any]) -> list[str]:
    """The v1 `file_ids` of a stored assistant: its code_interpreter files."""
    return list(assistant["tool_resources"].get("code_interpreter", {}).get("file_ids", []))


def searches(tools: list[dict[str, Any]]) -> bool:
    return any(tool["type"] == "file_search" for tool in tools)


class ManagedStores:
    def __init__(self, assistants: Assistants) -> None:
        self._assistants = assistants
        self._stores = assistants.vector_stores

    async def sync(self, assistant_id: str, tools: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Make the assistant's file_search store hold its v1 files (when `tools`, the assistant's own unless a
        run overrides them, search); the assistant as stored after."""
        assistant = self._assistants.objects.get("assistants", assistant_id)
        # A file deleted since it was attached leaves the assistant's retrieval, as at OpenAI, instead of failing
        # every later run.
        file_ids = [file_id for file_id in file_ids_of(assistant) if self._assistants.files.exists(file_id)]
        if not searches(tools if tools is not None else assistant["tools"]):
            return assistant
        store_id = self._current(assistant)
        if store_id is None:
            if not file_ids:
                return assistant
            project = self._assistants.owners.project_of(assistant_id)
            store = self._stores.create(f"assistant {assistant_id} files", project=project, metadata=MANAGED,
                                        attachments=[Attachment(f) for f in file_ids], expires_after_days=None,
                                        description=None)
            resources = {**assistant["tool_resources"], "file_search": {"vector_store_ids": [store.id]}}
            return self._assistants.objects.replace("assistants", {**assistant, "tool_resources": resources})
        held, _ = self._stores.file_page(store_id, _ALL)
        indexed = {record.file_id for record in held}
        missing = [Attachment(f) for f in file_ids if f not in indexed]
        if missing:
            self._stores.attach(store_id, missing)
        if self._stores.get(store_id).metadata == MANAGED:
            for file_id in indexed - set(file_ids):
                await self._stores.detach(store_id, file_id)
        return assistant

    def _current(self, assistant: dict[str, Any]) -> str | None:
        """The assistant's file_search store, if it has one that still exists."""
        for store_id in assistant["tool_resources"].get("file_search", {}).get("vector_store_ids", []):
            try:
                self._stores.get(store_id)
            except StoreNotFound:
                continue
            return str(store_id)
        return None
