"""The hosted tools of one response: its code_interpreter bound to the container it chose, its file_search over the
stores it names (each checked to be the caller's), both run through the same tools as every other face."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from orchestrator.errors import NotFound, Unavailable
from orchestrator.responses.containers import ResponseContainers
from orchestrator.services.container_files import ContainerFileStore
from orchestrator.services.projects import Caller, Owners
from orchestrator.services.storage import FileStore
from orchestrator.services.vector_stores import VectorStores
from orchestrator.tools.citations import CitationStore
from orchestrator.tools.code_interpreter import CellRunner, CodeInterpreterTool
from orchestrator.tools.definitions import CODE_INTERPRETER, FILE_SEARCH
from orchestrator.tools.registry import Tool


async def _no_container() -> str:
    raise Unavailable("The sandbox engine is not running, so code_interpreter is unavailable.")


@dataclass
class Prepared:
    tools: dict[str, Tool] = field(default_factory=dict)
    file_search: dict[str, Any] | None = None  # the file_search tool definition as the request gave it
    container: Callable[[], Awaitable[str]] = _no_container

    @property
    def hosted(self) -> set[str]:
        return set(self.tools)


class ResponseTools:
    def __init__(self, file_search: Tool, stores: VectorStores, citations: CitationStore, files: FileStore,
                 owners: Owners, containers: ResponseContainers | None, interpreter: CellRunner | None,
                 container_files: ContainerFileStore | None, max_chars: int) -> None:
        self._file_search, self._stores = file_search, stores
        self.citations, self.files, self._owners = citations, files, owners
        self._containers, self._interpreter, self.container_files = containers, interpreter, container_files
        self._max_chars = max_chars

    async def prepare(self, tools: list[dict[str, Any]], caller: Caller, context: list[dict[str, Any]]) -> Prepared:
        prepared = Prepared()
        for index, tool in enumerate(tools):
            if tool.get("type") == FILE_SEARCH:
                for store_id in tool.get("vector_store_ids") or []:
                    if not self._owners.sees(caller, store_id):
                        raise NotFound(f"Vector store with id '{store_id}' not found.")
                    self._stores.get(store_id)  # one that does not exist: the same 404
                prepared.file_search = tool
                prepared.tools[FILE_SEARCH] = self._file_search
            elif tool.get("type") == CODE_INTERPRETER:
                if self._containers is None or self._interpreter is None:
                    raise Unavailable("The sandbox engine is not running, so code_interpreter is unavailable.")
                choice = await self._containers.choose(tool, caller, context, f"tools[{index}].container")
                binder = self._containers.binder(choice)
                prepared.tools[CODE_INTERPRETER] = CodeInterpreterTool(binder, self._interpreter,
                                                                       max_chars=self._max_chars)
                prepared.container = binder.container
        return prepared
