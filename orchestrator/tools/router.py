"""The front door for assistant servers: a tool call exactly as the model emitted it, routed to its tool."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from orchestrator.container_files import ContainerFileStore
from orchestrator.interpreter import Interpreter
from orchestrator.threads import ThreadSandboxes
from orchestrator.tools.annotations import FilePathAnnotation, file_path_annotations
from orchestrator.tools.code_interpreter import CodeInterpreterResult, run_code
from orchestrator.tools.definitions import CODE_INTERPRETER, tool_definitions


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


class ToolRouter:
    def __init__(self, threads: ThreadSandboxes, interpreter: Interpreter, container_files: ContainerFileStore, *,
                 max_output_chars: int) -> None:
        self._threads = threads
        self._interpreter = interpreter
        self._container_files = container_files
        self._max_output_chars = max_output_chars

    @staticmethod
    def definitions() -> list[dict[str, Any]]:
        return tool_definitions()

    async def call(self, thread_id: str, call: ToolCall, resources: ToolResources) -> CodeInterpreterResult:
        if call.name != CODE_INTERPRETER:
            known = ", ".join(d["function"]["name"] for d in tool_definitions())
            raise ToolCallError(f"Unknown tool '{call.name}'. Toolshed runs: {known}.",
                                "tool_call.function.name", "unknown_tool")
        code = _argument(call, "code")
        container_id = await self._threads.sandbox_for(thread_id, resources.code_interpreter_file_ids)
        return await run_code(self._interpreter, container_id, code, max_chars=self._max_output_chars)

    def annotate(self, thread_id: str, text: str) -> list[FilePathAnnotation]:
        """Annotations for every file of the thread that `text` names (none if the thread never ran code)."""
        container_id = self._threads.container_of(thread_id)
        records = self._container_files.all(container_id) if container_id else []
        return file_path_annotations(text, {r.path: r.file_id for r in records if r.file_id})


def _argument(call: ToolCall, name: str) -> str:
    param = "tool_call.function.arguments"
    try:
        arguments = json.loads(call.arguments)
    except json.JSONDecodeError as exc:
        raise ToolCallError(f"The arguments of tool call '{call.id}' are not valid JSON ({exc.msg} at "
                            f"position {exc.pos}); expected an object like {{\"{name}\": \"...\"}}.",
                            param, "invalid_arguments") from exc
    if not isinstance(arguments, dict) or not isinstance(arguments.get(name), str):
        raise ToolCallError(f"The arguments of tool call '{call.id}' must be a JSON object with a string "
                            f"'{name}'.", param, "invalid_arguments")
    return arguments[name]
