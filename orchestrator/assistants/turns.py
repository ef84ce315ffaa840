"""A run's turns as Assistants objects: the agent loop's Listener for one run. Each turn's text becomes a message
(with its `message_creation` step), each hosted call a `tool_calls` step."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from orchestrator.agent.chat import ModelTurn, TextHook, ToolCall
from orchestrator.assistants.hosted import HostedCalls
from orchestrator.assistants.steps import StepLog, usage_of
from orchestrator.assistants.writer import MessageWriter

WriterMaker = Callable[[dict[str, Any]], MessageWriter]


class RunTurns:
    def __init__(self, run: dict[str, Any], new_writer: WriterMaker, steps: StepLog, hosted: HostedCalls) -> None:
        self._run, self._new_writer, self._steps, self._hosted = run, new_writer, steps, hosted
        self._writer: MessageWriter | None = None

    def turn_started(self) -> TextHook:
        self._writer = self._new_writer(self._run)
        return self._writer.piece

    def turn_ended(self, turn: ModelTurn, cut_short: bool) -> None:
        writer = self._writer
        if writer is not None and writer.finish(turn.text, cut_short) is not None:
            assert writer.step is not None and writer.message is not None
            self._steps.finish(writer.step, {"type": "message_creation", "message_creation": {
                "message_id": writer.message["id"]}}, _usage(turn))

    async def run_tool(self, call: ToolCall, turn: ModelTurn) -> str:
        return await self._hosted.run(self._run, call, _usage(turn))


def _usage(turn: ModelTurn) -> dict[str, int]:
    return usage_of(turn.prompt_tokens, turn.completion_tokens)
