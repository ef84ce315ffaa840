"""The front door for assistant servers: a tool call exactly as the model emitted it, routed to its tool."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from orchestrator import logs
from orchestrator.container_files import ContainerFileStore
from orchestrator.interpreter import Interpreter
from orchestrator.sandbox import EngineUnavailable
from orchestrator.threads import ThreadSandboxes
from orchestrator.tools.annotations import FilePathAnnotation, file_path_annotations
from orchestrator.tools.citations import CitationAnnotation, CitationStore
from orchestrator.tools.code_interpreter import CodeInterpreterResult, run_code
from orchestrator.tools.definitions import CODE_INTERPRETER, FILE_SEARCH, tool_definitions
from orchestrator.tools.file_search import FileSearchResult, run_search
from retrieval.vector_store import VectorStoreEngine


class ToolCallError(Exception):
    """The tool call cannot be run as given (unknown tool, arguments that are not the tool's JSON)."""

    def __init__(self, message: str, param: str, code: str) -> None:
        super().__init__(message)
        self.param, self.code = param, code


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class ToolResources:
    code_interpreter_file_ids: list[str] = field(default_factory=list)
    vector_store_ids: list[str] = field(default_factory=list)


ToolResult = CodeInterpreterResult | FileSearchResult


@dataclass(frozen=True)
class Annotations:
    file_paths: list[FilePathAnnotation]
    citations: list[CitationAnnotation]


class ToolRouter:
    """Routes tool calls. `sandboxes` is None when the sandbox engine is down: file_search still works then."""

    def __init__(self, retrieval: VectorStoreEngine, citations: CitationStore, sandboxes: Sandboxes | None, *,
                 max_output_chars: int) -> None:
        self._retrieval = retrieval
        self._citations = citations
        self._sandboxes = sandboxes
        self._max_output_chars = max_output_chars

    @staticmethod
    def definitions() -> list[dict[str, Any]]:
        return tool_definitions()

    async def call(self, thread_id: str, call: ToolCall, resources: ToolResources) -> ToolResult:
        with logs.bind(thread_id=thread_id, tool_call_id=call.id):
            return await self._call(thread_id, call, resources)

    async def _call(self, thread_id: str, call: ToolCall, resources: ToolResources) -> ToolResult:
        if call.name == CODE_INTERPRETER:
            code = _argument(call, "code")
            sandboxes = self._require_sandboxes()
            container_id = await sandboxes.threads.sandbox_for(thread_id, resources.code_interpreter_file_ids)
            return await run_code(sandboxes.interpreter, container_id, code, max_chars=self._max_output_chars)
        if call.name == FILE_SEARCH:
            query = _argument(call, "query")
            if not resources.vector_store_ids:
                raise ToolCallError("file_search needs tool_resources.file_search.vector_store_ids.",
                                    "tool_resources.file_search.vector_store_ids", "missing_vector_stores")
            return await run_search(self._retrieval, self._citations, thread_id, resources.vector_store_ids, query)
        known = ", ".join(d["function"]["name"] for d in tool_definitions())
        raise ToolCallError(f"Unknown tool '{call.name}'. Toolshed runs: {known}.", "tool_call.function.name",
                            "unknown_tool")

    def _require_sandboxes(self) -> Sandboxes:
        if self._sandboxes is None:
            raise EngineUnavailable("The sandbox engine is not running, so code_interpreter is unavailable.")
        return self._sandboxes

    def annotate(self, thread_id: str, text: str) -> Annotations:
        """file_path annotations for the thread's files that `text` names, and file_citation annotations for the
        search markers it kept."""
        file_paths: list[FilePathAnnotation] = []
        if self._sandboxes is not None:
            container_id = self._sandboxes.threads.container_of(thread_id)
            records = self._sandboxes.container_files.all(container_id) if container_id else []
            file_paths = file_path_annotations(text, {r.path: r.file_id for r in records if r.file_id})
        return Annotations(file_paths, self._citations.annotations(thread_id, text))


@dataclass(frozen=True)
class Sandboxes:
    """The code-interpreter side of routing."""

    threads: ThreadSandboxes
    interpreter: Interpreter
    container_files: ContainerFileStore


def _argument(call: ToolCall, name: str) -> str:
    param = "tool_call.function.arguments"
    try:
        arguments = json.loads(call.arguments)
    except json.JSONDecodeError as exc:
        raise ToolCallError(f"The arguments of tool call '{call.id}' are not valid JSON ({exc.msg} at "
                            f"position {exc.pos}); expected an object like {{\"{name}\": \"...\"}}.",
                            param, "invalid_arguments") from exc
    except RecursionError as exc:
        raise ToolCallError(f"The arguments of tool call '{call.id}' nest too deeply to parse; expected an object "
                            f"like {{\"{name}\": \"...\"}}.", param, "invalid_arguments") from exc
    if not isinstance(arguments, dict) or not isinstance(arguments.get(name), str):
        raise ToolCallError(f"The arguments of tool call '{call.id}' must be a JSON object with a string "
                            f"'{name}'.", param, "invalid_arguments")
    value: str = arguments[name]
    try:
        value.encode()
    except UnicodeEncodeError as exc:
        raise ToolCallError(f"The '{name}' argument of tool call '{call.id}' is not valid Unicode: it contains a "
                            f"lone surrogate escape at position {exc.start}.", param, "invalid_arguments") from exc
    return value
