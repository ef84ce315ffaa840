"""A run's token budget: what `max_prompt_tokens` and `max_completion_tokens` leave over the whole run, and the
conversation cut to fit it (`truncation_strategy`).

Token counts before a call are estimates (about four characters a token, as OpenAI's own rule of thumb): the
model's tokenizer is the endpoint's, not ours. After a call, the endpoint's reported usage is what counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_CHARS_PER_TOKEN = 4
_MESSAGE_OVERHEAD = 4  # role and separators, per message
# What a turn's answer needs room for when the run sets no completion cap.
_ANSWER_RESERVE = 1024


def estimate(message: dict[str, Any]) -> int:
    text = str(message.get("content") or "")
    for call in message.get("tool_calls") or []:
        text += call["function"]["name"] + call["function"]["arguments"]
    return _MESSAGE_OVERHEAD + -(-len(text) // _CHARS_PER_TOKEN)


@dataclass(frozen=True)
class Budget:
    """What is left of the run's caps after `usage`; None where the run set no cap."""

    prompt: int | None
    completion: int | None

    @classmethod
    def of(cls, run: dict[str, Any], usage: dict[str, int]) -> Budget:
        prompt, completion = run.get("max_prompt_tokens"), run.get("max_completion_tokens")
        return cls(None if prompt is None else prompt - usage["prompt_tokens"],
                   None if completion is None else completion - usage["completion_tokens"])

    def exhausted(self) -> str | None:
        """The incomplete_details reason if a cap is used up, else None."""
        if self.completion is not None and self.completion <= 0:
            return "max_completion_tokens"
        if self.prompt is not None and self.prompt <= 0:
            return "max_prompt_tokens"
        return None

    def prompt_limit(self, context_tokens: int) -> int:
        """How many prompt tokens the next call may send: the model's context less room for the answer, and no
        more than the run has left."""
        room = context_tokens - (self.completion if self.completion is not None else _ANSWER_RESERVE)
        room = max(room, context_tokens // 2)
        return room if self.prompt is None else min(room, self.prompt)


def last_messages(messages: list[dict[str, Any]], strategy: dict[str, Any]) -> list[dict[str, Any]]:
    """The thread's messages a run starts from under `truncation_strategy` `last_messages: n`."""
    count = strategy.get("last_messages")
    if strategy.get("type") != "last_messages" or count is None:
        return messages
    return messages[-count:] if count else []


def fit(conversation: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """The conversation without its oldest turns until its estimate is within `limit` (`truncation_strategy`
    `auto`). The system prompt and the newest turn always stay; an assistant's tool calls leave together with
    their outputs, since a chat-completions server refuses a tool output whose call it cannot see."""
    system = [m for m in conversation[:1] if m["role"] == "system"]
    turns: list[list[dict[str, Any]]] = []
    for message in conversation[len(system):]:
        if message["role"] == "tool" and turns:
            turns[-1].append(message)
        else:
            turns.append([message])
    total = sum(estimate(m) for m in conversation)
    while len(turns) > 1 and total > limit:
        total -= sum(estimate(m) for m in turns.pop(0))
    return system + [message for turn in turns for message in turn]
