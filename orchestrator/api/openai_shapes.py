"""The Assistants face's answers, for the OpenAPI document: the `openai` package's own models.

The routes hand back stored bodies as they are (validating every answer a second time would cost each poll), so
the models document rather than serialize; the suite's schemathesis run checks every answer against them."""

from __future__ import annotations

from typing import Any

from openai.types.beta import Assistant, Thread
from openai.types.beta.threads import Message, Run
from openai.types.beta.threads.runs import RunStep
from pydantic import BaseModel

from orchestrator.api.schemas import ListPage

__all__ = ["EVENT_STREAM", "Assistant", "Message", "Run", "RunStep", "Thread", "shaped"]

# Streamed answers are Server-Sent Events, each an `event:` name (OpenAI's, e.g. `thread.run.created`) and a
# `data:` line holding the object as JSON; the last event's data is `[DONE]`. The schema is one event's.
EVENT_STREAM = {"text/event-stream": {"schema": {
    "type": "object", "required": ["data"],
    "properties": {"event": {"type": "string"}, "data": {"type": "string"}}}}}


def shaped(model: type[BaseModel], *, listed: bool = False, streamed: bool = False) -> dict[str, Any]:
    """Route arguments documenting a 200 answer as `model` (or a list page of it), and as an event stream when the
    request asks for `stream`."""
    answer: dict[str, Any] = {"model": ListPage[model] if listed else model,  # type: ignore[valid-type]
                              "description": "A list page" if listed else model.__name__}
    if streamed:
        answer["content"] = EVENT_STREAM
    return {"response_model": None, "responses": {200: answer}}
