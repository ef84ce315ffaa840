"""What run tests share: a thread with one question, and a streamed response read as (event, data) pairs."""

from __future__ import annotations

import json

import httpx
from openai import OpenAI


def ask(client: OpenAI, text: str, **assistant: object) -> tuple[str, str]:
    created = client.beta.assistants.create(model=str(assistant.pop("model", "scripted")), **assistant)  # type: ignore[arg-type]
    thread = client.beta.threads.create(messages=[{"role": "user", "content": text}])
    return created.id, thread.id


def sse_events(response: httpx.Response) -> list[tuple[str, object]]:
    events, name = [], None
    for line in response.iter_lines():
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            data = line.removeprefix("data: ")
            events.append((name, data if data == "[DONE]" else json.loads(data)))
    return events
