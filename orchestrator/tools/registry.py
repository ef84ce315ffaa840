"""Tools as a registry: each tool has a name, the definition a model is given, and a run.

What a model gets wrong (an unknown tool, arguments that are not the tool's JSON) is an outcome the model can
read (`ToolProblem`), never an exception: a face decides what to make of it (`POST /v1/tool_calls` answers 400,
a run hands it back to the model). Only infrastructure failures raise.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Protocol

from orchestrator import logs
from orchestrator.agent.chat import ToolCall
from orchestrator.tools.cells import ItemHook


@dataclass(frozen=True)
class ToolResources:
    code_interpreter_file_ids: list[str] = field(default_factory=list)
    vector_store_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SearchSettings:
    """How file_search searches for this caller: an assistant's `file_search.max_num_results` and
    `ranking_options.score_threshold`, a Responses tool's `filters` too (None: the tool's defaults)."""

    max_results: int | None = None
    score_threshold: float | None = None
    filters: dict[str, Any] | None = None  # over file attributes, as the Vector Stores API's search takes them


@dataclass(frozen=True)
class ToolContext:
    """Whose call this is: the face's scope and its conversation key (a thread id), the project a sandbox it
    starts belongs to, what it may use, and who wants each output as it is produced (a streamed run step)."""

    scope: str
    key: str
    project: str
    resources: ToolResources = field(default_factory=ToolResources)
    on_output: ItemHook | None = None
    search: SearchSettings = field(default_factory=SearchSettings)
    timeout: float | None = None  # for a code cell; None: the server's default


class Outcome(Protocol):
    @property
    def output(self) -> str:
        """What goes back to the model."""
        ...


@dataclass(frozen=True)
class ToolProblem:
    """The call cannot be run as given; `output` tells the model why."""

    message: str
    code: str
    param: str

    @property
    def output(self) -> str:
        return f"Error: {self.message}"


class Tool(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def definition(self) -> dict[str, Any]:
        """The Chat Completions function-tool definition."""
        ...

    async def run(self, call: ToolCall, context: ToolContext) -> Outcome: ...


class ToolRegistry:
    def __init__(self, tools: list[Tool]) -> None:
        self._tools = {tool.name: tool for tool in tools}

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def definitions(self) -> list[dict[str, Any]]:
        return [tool.definition for tool in self._tools.values()]

    async def call(self, call: ToolCall, context: ToolContext) -> Outcome:
        tool = self._tools.get(call.name)
        if tool is None:
            return ToolProblem(f"Unknown tool '{call.name}'. Toolshed runs: {', '.join(self._tools)}.",
                               "unknown_tool", "tool_call.function.name")
        with logs.bind(thread_id=context.key, tool_call_id=call.id):
            return await tool.run(call, context)


def string_argument(call: ToolCall, name: str) -> str | ToolProblem:
    """The string argument `name` of a call whose arguments are a JSON object, or why it cannot be had."""
    param = "tool_call.function.arguments"
    example = f"expected an object like {{\"{name}\": \"...\"}}."
    try:
        arguments = json.loads(call.arguments)
    except json.JSONDecodeError as exc:
        return ToolProblem(f"The arguments of tool call '{call.id}' are not valid JSON ({exc.msg} at position "
                           f"{exc.pos}); {example}", "invalid_arguments", param)
    except RecursionError:
        return ToolProblem(f"The arguments of tool call '{call.id}' nest too deeply to parse; {example}",
                           "invalid_arguments", param)
    if not isinstance(arguments, dict) or not isinstance(arguments.get(name), str):
        return ToolProblem(f"The arguments of tool call '{call.id}' must be a JSON object with a string '{name}'.",
                           "invalid_arguments", param)
    value: str = arguments[name]
    try:
        value.encode()
    except UnicodeEncodeError as exc:
        return ToolProblem(f"The '{name}' argument of tool call '{call.id}' is not valid Unicode: it contains a lone "
                           f"surrogate escape at position {exc.start}.", "invalid_arguments", param)
    return value
