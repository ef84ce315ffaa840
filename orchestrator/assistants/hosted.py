"""Hosted tool calls in a run: each runs through the tool registry in the scope "assistants", keyed by thread id
(each thread has its own sandbox and its own citation markers), as a `tool_calls` step whose code input and
outputs stream as deltas."""

from __future__ import annotations

from typing import Any

from orchestrator import logs
from orchestrator.assistants.options import resources, search_settings
from orchestrator.assistants.steps import StepLog
from orchestrator.assistants.store import ObjectStore
from orchestrator.metrics import TOOL_CALLS
from orchestrator.services.projects import Owners
from orchestrator.tools.cells import Item
from orchestrator.tools.code_interpreter import CodeInterpreterResult
from orchestrator.tools.definitions import CODE_INTERPRETER_TOOL, FILE_SEARCH_TOOL
from orchestrator.tools.file_search import FileSearchResult
from orchestrator.tools.registry import ToolCall, ToolContext, ToolProblem, ToolRegistry
from orchestrator.tools.steps import RANKER, code_of, output_shape, tool_call_step

SCOPE = "assistants"
# The hosted tools, offered to the model as the function tools GET /v1/tools lists.
HOSTED = {"code_interpreter": CODE_INTERPRETER_TOOL, "file_search": FILE_SEARCH_TOOL}


class HostedCalls:
    def __init__(self, tools: ToolRegistry, objects: ObjectStore, steps: StepLog, owners: Owners) -> None:
        self._tools = tools
        self._objects = objects
        self._steps = steps
        self._owners = owners

    async def run(self, run: dict[str, Any], call: ToolCall, usage: dict[str, int]) -> str:
        """Run one hosted tool call as a `tool_calls` step; returns what the model reads."""
        step = self._steps.open(run, "tool_calls", {"type": "tool_calls", "tool_calls": []})
        header: dict[str, Any] = {"index": 0, "id": call.id, "type": call.name}
        if call.name == "code_interpreter":
            header["code_interpreter"] = {"input": code_of(call.arguments), "outputs": []}
        else:
            header["file_search"] = {}
        self._steps.delta(step, header)
        outputs = 0

        async def on_output(item: Item) -> None:
            nonlocal outputs
            self._steps.delta(step, {"index": 0, "type": "code_interpreter", "code_interpreter": {
                "outputs": [{"index": outputs, **output_shape(item)}]}})
            outputs += 1

        TOOL_CALLS.labels(call.name).inc()
        context = ToolContext(SCOPE, run["thread_id"], self._owners.project_of(run["thread_id"]),
                              resources(self._objects, run), on_output, search_settings(run))
        with logs.bind(step_id=step["id"]):
            outcome = await self._tools.call(call, context)
        if isinstance(outcome, CodeInterpreterResult | FileSearchResult):
            details = tool_call_step(call.id, outcome)
        else:
            assert isinstance(outcome, ToolProblem)
            details = {"id": call.id, "type": call.name, **_problem(call, outcome)}
        self._steps.finish(step, {"type": "tool_calls", "tool_calls": [details]}, usage)
        return outcome.output


def _problem(call: ToolCall, problem: ToolProblem) -> dict[str, Any]:
    """A call the tool could not run, shown in the step as the tool's own shape."""
    if call.name == "code_interpreter":
        return {"code_interpreter": {"input": call.arguments, "outputs": [{"type": "logs", "logs": problem.output}]}}
    return {"file_search": {"ranking_options": {"ranker": RANKER, "score_threshold": 0.0},
                            "results": []}}
