"""What run tests share: an assistant and a thread with one question."""

from __future__ import annotations

from openai import OpenAI


def ask(client: OpenAI, text: str, **assistant: object) -> tuple[str, str]:
    created = client.beta.assistants.create(model=str(assistant.pop("model", "scripted")), **assistant)  # type: ignore[arg-type]
    thread = client.beta.threads.create(messages=[{"role": "user", "content": text}])
    return created.id, thread.id
