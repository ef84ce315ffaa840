"""The code_interpreter tool: run the model's code in its conversation's sandbox and describe the result to it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from orchestrator.sandbox import EngineUnavailable
from orchestrator.sandbox.models import Artifact
from orchestrator.tools.annotations import escape_path
from orchestrator.tools.cells import CellRun, ItemHook, Logs
from orchestrator.tools.definitions import CODE_INTERPRETER, CODE_INTERPRETER_TOOL
from orchestrator.tools.registry import Outcome, ToolCall, ToolContext, string_argument


@dataclass(frozen=True)
class CodeInterpreterResult:
    run: CellRun
    code: str
    container_id: str
    output: str  # what goes back to the model


class SandboxBinder(Protocol):
    async def sandbox_for(self, scope: str, key: str, file_ids: list[str], project: str) -> str:
        """The sandbox bound to (scope, key), started for `project` with `file_ids` in /mnt/data if need be."""
        ...


class CellRunner(Protocol):
    async def run(self, sandbox_id: str, code: str, timeout: float | None = None,
                  on_item: ItemHook | None = None) -> CellRun:
        """`code` run as one cell of the sandbox, its outputs to `on_item` as they come."""
        ...


class CodeInterpreterTool:
    """Runs in the sandbox bound to the call's (scope, key); `bindings` is None when the sandbox engine is down."""

    name = CODE_INTERPRETER
    definition: dict[str, Any] = CODE_INTERPRETER_TOOL

    def __init__(self, bindings: SandboxBinder | None, interpreter: CellRunner | None, *, max_chars: int) -> None:
        self._bindings = bindings
        self._interpreter = interpreter
        self._max_chars = max_chars

    async def run(self, call: ToolCall, context: ToolContext) -> Outcome:
        code = string_argument(call, "code")
        if not isinstance(code, str):
            return code
        if self._bindings is None or self._interpreter is None:
            raise EngineUnavailable("The sandbox engine is not running, so code_interpreter is unavailable.")
        container_id = await self._bindings.sandbox_for(context.scope, context.key,
                                                        context.resources.code_interpreter_file_ids, context.project)
        run = await self._interpreter.run(container_id, code, context.timeout, on_item=context.on_output)
        return CodeInterpreterResult(run, code, container_id, model_output(run, self._max_chars))


def model_output(run: CellRun, max_chars: int) -> str:
    """Logs, errors, images and new files as text for the model, at most about `max_chars` long.

    The file list is never cut: it is how the model learns the paths it may cite. The logs give way instead,
    keeping their head and tail (where tracebacks end).
    """
    body = "".join(item.text if isinstance(item, Logs) else f"[image displayed to the user: {item.file_id}]\n"
                   for item in run.items)
    error = run.execution.error
    if error is not None and not error.traceback:  # timeouts, OOM, kernel death: not in the logs yet
        body += f"{error.name}: {error.value}\n"
    execution = run.execution
    files = "".join(_describe(artifact) for artifact in execution.artifacts)
    if execution.artifacts_omitted:
        files += (f"... and {execution.artifacts_omitted} more files, not listed and not delivered (they can be "
                  "downloaded as container files)\n")
    if not execution.artifacts_complete:
        files += "(/mnt/data holds too many entries to check after each execution: some files were not looked at)\n"
    if files:
        files = "Files written to /mnt/data (already delivered to the user):\n" + files
    if not body and not files:
        return "(no output)"
    return _shorten(body, max(max_chars - len(files), 200)) + files


def _describe(artifact: Artifact) -> str:
    line = f"sandbox:{escape_path(artifact.path)} ({artifact.bytes} bytes)"
    return f"{line} - {artifact.error}\n" if artifact.error else f"{line}\n"


def _shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    head, tail = limit * 2 // 3, limit // 3
    omitted = len(text) - head - tail
    return f"{text[:head]}\n... [{omitted} characters omitted] ...\n{text[-tail:]}"
