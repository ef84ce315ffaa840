"""Assistants, threads and messages through the official SDK's `client.beta`, every object checked against the
SDK's own types (openai.types.beta), with their tool resources and attachments."""

from __future__ import annotations

import io
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI
from openai.types.beta import Assistant, Thread
from openai.types.beta.threads import Message

from orchestrator.localserver import Server
from tests.datasets import DOCS

# The SDK marks the Assistants API deprecated (OpenAI shut it down); serving it is the point.
pytestmark = [pytest.mark.docker, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

WEATHER_PARAMETERS = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
FUNCTION = {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city.",
                                             "parameters": WEATHER_PARAMETERS}}


def upload(client: OpenAI, name: str, data: bytes) -> str:
    return client.files.create(file=(name, io.BytesIO(data)), purpose="assistants").id


def exact(model: type, obj: Any) -> Any:
    """The object re-validated strictly from its JSON: every field the SDK type knows, nothing it does not."""
    data = obj.model_dump(mode="json")
    assert set(data) <= set(model.model_fields), set(data) - set(model.model_fields)
    return model.model_validate(data, strict=False)


def test_assistants_are_created_listed_updated_and_deleted(client: OpenAI) -> None:
    data = upload(client, "data.csv", b"a,b\n1,2\n")
    assistant = client.beta.assistants.create(
        name="Math Tutor", model="scripted", instructions="You are a personal math tutor.",
        tools=[{"type": "code_interpreter"}, {"type": "file_search", "file_search": {"max_num_results": 5}}, FUNCTION],
        tool_resources={"code_interpreter": {"file_ids": [data]}}, metadata={"team": "a"}, temperature=0.2)
    exact(Assistant, assistant)
    assert assistant.id.startswith("asst_") and assistant.object == "assistant"
    assert [t.type for t in assistant.tools] == ["code_interpreter", "file_search", "function"]
    assert assistant.tool_resources.code_interpreter.file_ids == [data]
    assert client.beta.assistants.retrieve(assistant.id) == assistant
    updated = client.beta.assistants.update(assistant.id, name="Tutor", metadata={"team": "b"})
    assert (updated.name, updated.metadata, updated.instructions) == ("Tutor", {"team": "b"}, assistant.instructions)
    second = client.beta.assistants.create(model="scripted")
    listed = client.beta.assistants.list(order="asc", limit=100)
    ids = [a.id for a in listed.data]
    assert ids.index(assistant.id) < ids.index(second.id)
    assert [a.id for a in client.beta.assistants.list(order="asc", after=assistant.id, limit=1)] == [second.id]
    deleted = client.beta.assistants.delete(second.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (second.id, "assistant.deleted", True)
    with pytest.raises(openai.NotFoundError):
        client.beta.assistants.retrieve(second.id)


def test_a_vector_store_helper_makes_the_assistant_its_store(client: OpenAI) -> None:
    notes = upload(client, "duck.md", (DOCS / "md" / "duck.md").read_bytes())
    assistant = client.beta.assistants.create(model="scripted", tools=[{"type": "file_search"}], tool_resources={
        "file_search": {"vector_stores": [{"file_ids": [notes], "metadata": {"made": "helper"}}]}})
    [store_id] = assistant.tool_resources.file_search.vector_store_ids
    assert client.vector_stores.retrieve(store_id).metadata == {"made": "helper"}


def test_threads_messages_and_attachments(client: OpenAI) -> None:
    data = upload(client, "data.csv", b"a,b\n1,2\n")
    notes = upload(client, "duck.md", (DOCS / "md" / "duck.md").read_bytes())
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Hello", "attachments": [
        {"file_id": data, "tools": [{"type": "code_interpreter"}]}]}], metadata={"user": "jane"})
    exact(Thread, thread)
    assert thread.tool_resources.code_interpreter.file_ids == [data]
    message = client.beta.threads.messages.create(
        thread.id, role="user", content=[{"type": "text", "text": "Look at these"}],
        attachments=[{"file_id": notes, "tools": [{"type": "file_search"}]}])
    exact(Message, message)
    assert message.content[0].text.value == "Look at these" and message.content[0].text.annotations == []
    assert message.attachments[0].file_id == notes
    [store_id] = client.beta.threads.retrieve(thread.id).tool_resources.file_search.vector_store_ids
    store = client.vector_stores.retrieve(store_id)
    assert store.expires_after is not None and store.expires_after.days == 7
    messages = client.beta.threads.messages.list(thread.id, order="asc")
    assert [m.content[0].text.value for m in messages.data] == ["Hello", "Look at these"]
    assert client.beta.threads.messages.list(thread.id, run_id="run_none").data == []
    changed = client.beta.threads.messages.update(message.id, thread_id=thread.id, metadata={"seen": "yes"})
    assert changed.metadata == {"seen": "yes"}
    client.beta.threads.messages.delete(message.id, thread_id=thread.id)
    assert len(client.beta.threads.messages.list(thread.id).data) == 1
    assert client.beta.threads.delete(thread.id).deleted
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.messages.list(thread.id)


def error_of(response: httpx.Response) -> tuple[int, str | None]:
    body = response.json()["error"]
    assert set(body) == {"message", "type", "param", "code"}
    return response.status_code, body["code"]


def test_bad_input_gets_openai_errors(server: Server, client: OpenAI) -> None:
    base = f"{server.base_url}/v1"
    files = [upload(client, f"f{i}.txt", b"x") for i in range(21)]
    cases = [
        ("/assistants", {"model": "m", "tools": [{"type": "web_browser"}]}, 400),
        ("/assistants", {"model": "m", "tools": [{"type": "function", "function": {"name": "bad name!"}}]}, 400),
        ("/assistants", {"model": "m", "tools": [{"type": "function", "function": {
            "name": "f", "parameters": {"type": "string"}}}]}, 400),
        ("/assistants", {"model": "m", "tool_resources": {"code_interpreter": {"file_ids": files}}}, 400),
        ("/assistants", {"model": "m", "tool_resources": {"file_search": {"vector_store_ids": ["vs_a", "vs_b"]}}},
         400),
        ("/assistants", {"model": "m", "tool_resources": {"code_interpreter": {"file_ids": ["file-nope"]}}}, 404),
        ("/assistants", {"name": "no model"}, 400),
        ("/threads", {"messages": [{"role": "system", "content": "x"}]}, 400),
        ("/threads", {"messages": [{"role": "user", "content": "x", "attachments": [
            {"file_id": "file-nope", "tools": [{"type": "file_search"}]}]}]}, 404),
        ("/threads/thread_nope/messages", {"role": "user", "content": "x"}, 404),
    ]
    for path, body, status in cases:
        assert error_of(httpx.post(base + path, json=body))[0] == status, (path, body)
    assert error_of(httpx.get(f"{base}/assistants/asst_nope")) == (404, "not_found")
    thread = client.beta.threads.create()
    too_many = [{"file_id": f, "tools": [{"type": "code_interpreter"}]} for f in files]
    assert error_of(httpx.post(f"{base}/threads/{thread.id}/messages",
                               json={"role": "user", "content": "x", "attachments": too_many}))[0] == 400
    assert client.beta.threads.messages.list(thread.id).data == []  # nothing half-added
