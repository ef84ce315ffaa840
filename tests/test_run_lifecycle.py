"""A run's limits and life, through the official SDK against the real server and a scripted model over loopback:
token caps counted over the whole run (`incomplete`), truncation, expiry of an unanswered `requires_action`
(`expired`), the statuses a stream shows (`queued`, `in_progress`, `cancelling`, `cancelled`), run updates, and
OpenAI's errors for bad limits."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from openai import OpenAI

from orchestrator.localserver import Server
from tests.conftest import running_server, sdk_client, sse_events
from tests.run_helpers import ask
from tests.scripted_model import ScriptedModel, Turn

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
EXPIRY = 4
LOOKUP = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}


@pytest.fixture(scope="module")
def run_server(docker_ready: None, model: ScriptedModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("lifecycle"), TOOLSHED_MODEL_BASE_URL=model.base_url,
                        TOOLSHED_RUN_EXPIRY_SECONDS=str(EXPIRY)) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(run_server: Server) -> OpenAI:
    return sdk_client(run_server)


def words(count: int, word: str = "w") -> str:
    return " ".join([word] * count)


def test_max_completion_tokens_count_over_the_whole_run(client: OpenAI, model: ScriptedModel) -> None:
    model.say(Turn(text=words(250), tool_calls=[("lookup", "{}")]), Turn(text=words(50, "more")))
    assistant, thread = ask(client, "Look it up.", tools=[LOOKUP])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread, assistant_id=assistant, max_completion_tokens=260)
    assert run.status == "requires_action" and model.requests[-1]["max_tokens"] == 260
    [call] = run.required_action.submit_tool_outputs.tool_calls
    done = client.beta.threads.runs.submit_tool_outputs_and_poll(run_id=run.id, thread_id=thread, tool_outputs=[
        {"tool_call_id": call.id, "output": "found"}])
    assert model.requests[-1]["max_tokens"] == 5  # 255 of the 260 went to the first turn
    assert done.status == "incomplete" and done.incomplete_details.reason == "max_completion_tokens"
    assert done.usage.completion_tokens == 260 and done.expires_at is None
    last = client.beta.threads.messages.list(thread).data[0]
    assert last.status == "incomplete" and last.incomplete_details.reason == "max_tokens"
    assert last.content[0].text.value == words(5, "more")


def test_a_streamed_run_cut_by_its_cap_ends_incomplete(client: OpenAI, run_server: Server,
                                                       model: ScriptedModel) -> None:
    model.say(Turn(text=words(300), pieces=3))
    assistant, thread = ask(client, "Talk a lot.")
    with httpx.stream("POST", f"{run_server.base_url}/v1/threads/{thread}/runs", timeout=60, json={
            "assistant_id": assistant, "stream": True, "max_completion_tokens": 256}) as response:
        events = sse_events(response)
    assert [name for name, _ in events][-5:] == [
        "thread.message.delta", "thread.message.incomplete", "thread.run.step.completed", "thread.run.incomplete",
        "done"]
    run = events[-2][1]
    assert run["incomplete_details"] == {"reason": "max_completion_tokens"}  # type: ignore[index]


def test_max_prompt_tokens_end_the_run_before_the_next_call(client: OpenAI, model: ScriptedModel) -> None:
    model.say(Turn(tool_calls=[("lookup", "{}")], prompt_tokens=300))
    assistant, thread = ask(client, "Look it up.", tools=[LOOKUP])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread, assistant_id=assistant, max_prompt_tokens=256)
    assert run.status == "requires_action"
    calls = len(model.requests)
    [call] = run.required_action.submit_tool_outputs.tool_calls
    done = client.beta.threads.runs.submit_tool_outputs_and_poll(run_id=run.id, thread_id=thread, tool_outputs=[
        {"tool_call_id": call.id, "output": "found"}])
    assert done.status == "incomplete" and done.incomplete_details.reason == "max_prompt_tokens"
    assert len(model.requests) == calls and done.usage.prompt_tokens == 300


def conversation_of(request: dict) -> list[str]:
    return [message["content"] for message in request["messages"]]


def test_truncation_keeps_the_last_messages_or_fits_the_prompt_cap(client: OpenAI, model: ScriptedModel) -> None:
    assistant = client.beta.assistants.create(model="scripted", instructions="Be brief.")
    long = [f"{n}:" + "x" * 400 for n in range(8)]
    thread = client.beta.threads.create(messages=[{"role": "user", "content": text} for text in long])
    model.say(Turn(text="ok"), Turn(text="ok"), Turn(text="ok"))
    client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, truncation_strategy={
        "type": "last_messages", "last_messages": 2})
    assert conversation_of(model.requests[-1]) == ["Be brief.", long[6], long[7]]
    # auto under a 256-token cap: about 105 tokens a long message, so only the two newest fit with the answer.
    client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, max_prompt_tokens=256)
    assert conversation_of(model.requests[-1]) == ["Be brief.", long[6], long[7], "ok"]
    client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert conversation_of(model.requests[-1]) == ["Be brief.", *long, "ok", "ok"]


def test_an_unanswered_requires_action_expires(client: OpenAI, model: ScriptedModel) -> None:
    model.say(Turn(tool_calls=[("lookup", "{}")]))
    assistant, thread = ask(client, "Look it up.", tools=[LOOKUP])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread, assistant_id=assistant)
    assert run.status == "requires_action" and run.expires_at == run.created_at + EXPIRY
    deadline = time.monotonic() + EXPIRY + 10
    while (run := client.beta.threads.runs.retrieve(run.id, thread_id=thread)).status == "requires_action":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert run.status == "expired" and run.expires_at is None and run.required_action is None
    [step] = client.beta.threads.runs.steps.list(run.id, thread_id=thread).data
    assert step.status == "expired" and step.expired_at is not None
    with pytest.raises(openai.BadRequestError, match="expired"):
        client.beta.threads.runs.submit_tool_outputs(run.id, thread_id=thread, tool_outputs=[
            {"tool_call_id": step.step_details.tool_calls[0].id, "output": "late"}])
    client.beta.threads.messages.create(thread, role="user", content="still there?")  # the lock is gone


def test_a_stream_shows_queued_in_progress_cancelling_and_cancelled(client: OpenAI, run_server: Server,
                                                                     model: ScriptedModel) -> None:
    model.say(Turn(text="slowly", delay=20))
    assistant, thread = ask(client, "Take your time.")
    names: list[str] = []
    cancel: threading.Thread | None = None
    with httpx.stream("POST", f"{run_server.base_url}/v1/threads/{thread}/runs", timeout=60,
                      json={"assistant_id": assistant, "stream": True}) as response:
        for line in response.iter_lines():
            if line.startswith("event: "):
                names.append(line.removeprefix("event: "))
            if line.startswith("data: {") and names[-1] == "thread.run.in_progress":
                run_id = line.split('"id": "', 1)[1].split('"', 1)[0]
                cancel = threading.Thread(target=client.beta.threads.runs.cancel, args=(run_id,),
                                          kwargs={"thread_id": thread})
                cancel.start()
    assert cancel is not None
    cancel.join(timeout=10)
    assert names == ["thread.run.created", "thread.run.queued", "thread.run.in_progress", "thread.run.cancelling",
                     "thread.run.cancelled", "done"]
    model.turns.clear()


def test_a_polled_run_is_queued_when_created_and_its_metadata_can_change(client: OpenAI,
                                                                          model: ScriptedModel) -> None:
    model.say(Turn(text="fine"))
    assistant, thread = ask(client, "Hello.")
    run = client.beta.threads.runs.create(thread_id=thread, assistant_id=assistant, metadata={"user": "jane"})
    assert run.status == "queued" and run.metadata == {"user": "jane"}
    updated = client.beta.threads.runs.update(run.id, thread_id=thread, metadata={"user": "jane", "seen": "yes"})
    assert updated.metadata == {"user": "jane", "seen": "yes"}
    done = client.beta.threads.runs.poll(run.id, thread_id=thread)
    assert done.status == "completed" and done.metadata == {"user": "jane", "seen": "yes"}


def test_bad_limits_and_includes_are_openai_errors(client: OpenAI, run_server: Server) -> None:
    assistant, thread = ask(client, "Hello.")
    for bad in ({"max_prompt_tokens": 10}, {"max_completion_tokens": 0},
                {"truncation_strategy": {"type": "last_messages"}}, {"truncation_strategy": {"type": "first"}}):
        response = httpx.post(f"{run_server.base_url}/v1/threads/{thread}/runs",
                              json={"assistant_id": assistant, **bad})
        assert response.status_code == 400, bad
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    response = httpx.post(f"{run_server.base_url}/v1/threads/{thread}/runs?include[]=step_details.secrets",
                          json={"assistant_id": assistant})
    assert response.status_code == 400 and response.json()["error"]["param"] == "include"


def test_run_overrides_reach_the_model(client: OpenAI, model: ScriptedModel) -> None:
    assistant = client.beta.assistants.create(model="scripted", instructions="Be brief.", tools=[LOOKUP])
    model.say(Turn(text="Bonjour."))
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id, model="other-model", instructions="Be kind.",
        thread={"messages": [{"role": "user", "content": "Hello."}]}, tools=[], temperature=0.2)
    assert run.status == "completed" and run.model == "other-model" and run.tools == []
    request = model.requests[-1]
    assert request["model"] == "other-model" and request["temperature"] == 0.2 and "tools" not in request
    assert request["messages"][0] == {"role": "system", "content": "Be kind."}
    model.say(Turn(text="Oui."))
    again = client.beta.threads.runs.create_and_poll(
        thread_id=run.thread_id, assistant_id=assistant.id, parallel_tool_calls=False,
        additional_instructions="Answer in French.", additional_messages=[{"role": "user", "content": "Et alors?"}])
    assert model.requests[-1]["messages"][0] == {"role": "system", "content": "Be brief.\n\nAnswer in French."}
    assert again.status == "completed" and model.requests[-1]["parallel_tool_calls"] is False
    assert conversation_of(model.requests[-1])[1:] == ["Hello.", "Bonjour.", "Et alors?"]
    [message] = client.beta.threads.messages.list(run.thread_id, run_id=again.id).data
    assert message.content[0].text.value == "Oui."


def test_a_users_images_reach_the_model_as_content_parts(client: OpenAI, model: ScriptedModel,
                                                         tmp_path: Path) -> None:
    picture = tmp_path / "dot.png"
    picture.write_bytes(b"\x89PNG\r\n\x1a\n-not-really-a-png")
    uploaded = client.files.create(file=picture.open("rb"), purpose="vision")
    model.say(Turn(text="A dot."))
    assistant = client.beta.assistants.create(model="scripted")
    run = client.beta.threads.create_and_run_poll(assistant_id=assistant.id, thread={"messages": [{
        "role": "user", "content": [{"type": "text", "text": "What is this?"},
                                    {"type": "image_file", "image_file": {"file_id": uploaded.id, "detail": "low"}},
                                    {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}]})
    assert run.status == "completed"
    text, inline, linked = model.requests[-1]["messages"][-1]["content"]
    assert text == {"type": "text", "text": "What is this?"}
    assert inline["image_url"]["detail"] == "low"
    assert base64.b64decode(inline["image_url"]["url"].split(",", 1)[1]) == picture.read_bytes()
    assert linked == {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
