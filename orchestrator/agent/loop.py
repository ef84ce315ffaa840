"""The agent loop every API face runs on: the model and the hosted tools take turns on a conversation until the
model answers, hands function calls back to the caller, uses up a budget, or fails.

The loop knows chat-completions messages, the model endpoint and a `Listener`; it knows nothing of HTTP, of how
a face stores its objects, or of which tools exist. Each face (the Assistants runner, the Responses and v1 faces)
turns the listener's callbacks into its own events and the `Ending` into its own terminal state.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from orchestrator.agent.budget import Budget, fit
from orchestrator.agent.chat import ModelClient, ModelError, ModelTurn, TextHook, ToolCall
from orchestrator.metrics import record_model_call

MAX_TURNS = 16


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def add(self, turn: ModelTurn) -> Usage:
        return Usage(self.prompt_tokens + turn.prompt_tokens, self.completion_tokens + turn.completion_tokens)


@dataclass(frozen=True)
class AgentRequest:
    """What one run asks of the model: which model, the function definitions it is offered (hosted tools among
    them, named in `hosted`), chat-completions options, and the run's caps."""

    model: str
    tools: list[dict[str, Any]]
    hosted: frozenset[str]
    options: dict[str, Any] = field(default_factory=dict)  # temperature, top_p, tool_choice, response_format
    parallel_tool_calls: bool = True
    max_prompt_tokens: int | None = None
    max_completion_tokens: int | None = None
    truncate: bool = True  # drop the oldest turns to fit the context (truncation_strategy auto)
    context_tokens: int = 16_384
    max_output_chars: int = 1_000_000  # all the model may write in this run, text and call arguments


class Listener(Protocol):
    """How a face follows a run as it happens."""

    def turn_started(self) -> TextHook:
        """A model turn begins; each piece of its text goes to the hook returned."""
        ...

    def turn_ended(self, turn: ModelTurn, cut_short: bool) -> None:
        """The model's turn is over (`cut_short`: a cap stopped it mid-answer); its text is whole now."""
        ...

    async def run_tool(self, call: ToolCall, turn: ModelTurn) -> str:
        """Run one hosted tool call; returns what the model reads."""
        ...


Status = Literal["completed", "incomplete", "requires_action", "failed"]


@dataclass(frozen=True)
class Ending:
    """How the loop stopped: `reason` for incomplete (the cap used up), `error` (code, message) for failed,
    `calls` for requires_action; `conversation` as it stands, to resume from once the calls are answered."""

    status: Status
    usage: Usage
    conversation: list[dict[str, Any]]
    reason: str | None = None
    error: tuple[str, str] | None = None
    calls: list[ToolCall] = field(default_factory=list)


async def run_agent(model: ModelClient, request: AgentRequest, conversation: list[dict[str, Any]],
                    listener: Listener, usage: Usage | None = None) -> Ending:
    """Turns until the model is done; `usage` is what earlier turns of the same run already took."""
    usage = usage or Usage()
    written = _written(conversation)
    for _ in range(MAX_TURNS):
        budget = Budget(None if request.max_prompt_tokens is None else request.max_prompt_tokens - usage.prompt_tokens,
                        None if request.max_completion_tokens is None
                        else request.max_completion_tokens - usage.completion_tokens)
        if (reason := budget.exhausted()) is not None:
            return Ending("incomplete", usage, conversation, reason=reason)
        sent = fit(conversation, budget.prompt_limit(request.context_tokens)) if request.truncate else conversation
        try:
            turn = await _complete(model, request, sent, budget, listener.turn_started(),
                                   request.max_output_chars - written)
        except ModelError as exc:
            return Ending("failed", usage, conversation, error=(exc.code, str(exc)))
        usage = usage.add(turn)
        written += len(turn.text) + sum(len(call.arguments) for call in turn.calls)
        cut_short = turn.finish_reason in ("length", "output_limit")
        listener.turn_ended(turn, cut_short)
        if cut_short:
            return Ending("incomplete", usage, conversation, reason="max_completion_tokens")
        if not turn.calls:
            return Ending("completed", usage, conversation)
        conversation.append({"role": "assistant", "content": turn.text or None, "tool_calls": [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in turn.calls]})
        for call in (c for c in turn.calls if c.name in request.hosted):
            conversation.append({"role": "tool", "tool_call_id": call.id,
                                 "content": await listener.run_tool(call, turn)})
        functions = [c for c in turn.calls if c.name not in request.hosted]
        if functions:
            return Ending("requires_action", usage, conversation, calls=functions)
    return Ending("failed", usage, conversation,
                  error=("server_error", f"The model called tools {MAX_TURNS} times in a row."))


async def _complete(model: ModelClient, request: AgentRequest, sent: list[dict[str, Any]], budget: Budget,
                    on_text: TextHook, max_chars: int) -> ModelTurn:
    started = time.monotonic()
    tools = request.tools
    turn = await model.complete(
        request.model, sent, on_text=on_text, max_chars=max(max_chars, 0), tools=tools or None,
        max_tokens=budget.completion,
        parallel_tool_calls=None if not tools or request.parallel_tool_calls else False, **request.options)
    record_model_call(time.monotonic() - started, turn.prompt_tokens, turn.completion_tokens)
    return turn


def _written(conversation: list[dict[str, Any]]) -> int:
    """What the model has written so far in this run, resumed after tool outputs: the turns that called tools
    (a thread's earlier answers carry no tool calls in a prompt)."""
    total = 0
    for message in conversation:
        if message["role"] == "assistant" and message.get("tool_calls"):
            total += len(message.get("content") or "")
            total += sum(len(call["function"]["arguments"]) for call in message["tool_calls"])
    return total
