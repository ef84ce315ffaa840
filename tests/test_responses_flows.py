"""A response's life beyond one call: background and cancel, a restart, a container reused along a chain, store
false, delete, the streams of a file-search, a function and a failed turn, and the OpenAI Agents SDK driving
Toolshed's hosted tools."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import agents
import httpx
import openai
import pytest
from openai import AsyncOpenAI, OpenAI

from orchestrator.localserver import Server
from tests.conftest import running_server, sdk_client, sse_events
from tests.scripted_model import ScriptedModel, Turn

CODE = {"type": "code_interpreter", "container": {"type": "auto"}}


@pytest.fixture(scope="module")
def flows_server(docker_ready: None, model: ScriptedModel,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("flows"), TOOLSHED_MODEL_BASE_URL=model.base_url) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(flows_server: Server) -> OpenAI:
    return sdk_client(flows_server)


def code_turn(code: str) -> Turn:
    return Turn(tool_calls=[("code_interpreter", json.dumps({"code": code}))])


def wait_for(client: OpenAI, response_id: str, statuses: set[str], timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while (status := client.responses.retrieve(response_id).status) not in statuses:
        assert time.monotonic() < deadline, status
        time.sleep(0.1)
    return str(status)


def test_a_background_response_can_be_cancelled(client: OpenAI, model: ScriptedModel) -> None:
    model.say(Turn(text="slow", delay=30))
    asked = len(model.requests)
    r = client.responses.create(model="m", input="Take your time.", background=True)
    assert r.status in ("queued", "in_progress") and r.background
    deadline = time.monotonic() + 60
    while len(model.requests) == asked:  # cancel once the model is answering: its slow turn is then taken
        assert time.monotonic() < deadline, "the response never called the model"
        time.sleep(0.05)
    assert client.responses.retrieve(r.id).status == "in_progress"
    cancelled = client.responses.cancel(r.id)
    assert cancelled.status == "cancelled"
    assert client.responses.retrieve(r.id).status == "cancelled"
    assert client.responses.cancel(r.id).status == "cancelled"  # idempotent once terminal
    model.say(Turn(text="done"))
    quick = client.responses.create(model="m", input="Now.")
    with pytest.raises(openai.BadRequestError):
        client.responses.cancel(quick.id)  # not a background response


def test_a_chain_keeps_its_container_and_its_variables(client: OpenAI, model: ScriptedModel) -> None:
    model.say(code_turn("secret = 41"), Turn(text="Stored."))
    first = client.responses.create(model="m", input="Remember 41.", tools=[CODE])
    model.say(code_turn("print(secret + 1)"), Turn(text="42"))
    second = client.responses.create(model="m", input="Add one.", tools=[CODE], previous_response_id=first.id,
                                     include=["code_interpreter_call.outputs"])
    assert second.output[0].container_id == first.output[0].container_id  # type: ignore[union-attr]
    assert second.output[0].outputs[0].logs == "42\n"  # type: ignore[union-attr]
    listed = [c.id for c in client.containers.list().data]
    assert first.output[0].container_id in listed  # type: ignore[union-attr]


def test_unstored_and_deleted_responses_are_gone(client: OpenAI, model: ScriptedModel) -> None:
    model.say(Turn(text="ephemeral"))
    unstored = client.responses.create(model="m", input="hi", store=False)
    assert unstored.output_text == "ephemeral"
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unstored.id)
    model.say(Turn(text="kept"))
    kept = client.responses.create(model="m", input="hi")
    client.responses.delete(kept.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(kept.id)
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(model="m", input="again", previous_response_id=kept.id)
    assert refused.value.code == "previous_response_not_found"


def test_streams_of_search_function_and_failure(client: OpenAI, flows_server: Server, model: ScriptedModel,
                                               tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("The office closes at five on Fridays.")
    store = client.vector_stores.create(name="notes")
    client.vector_stores.files.upload_and_poll(vector_store_id=store.id, file=(tmp_path / "notes.txt").open("rb"))
    model.say(Turn(tool_calls=[("file_search", '{"query": "office hours Friday"}')]),
              Turn(tool_calls=[("lookup", '{"day": "friday"}')]))
    with httpx.stream("POST", f"{flows_server.base_url}/v1/responses", timeout=60, json={
            "model": "m", "input": "When does the office close?", "stream": True, "tools": [
                {"type": "file_search", "vector_store_ids": [store.id]},
                {"type": "function", "name": "lookup", "parameters": {"type": "object"}}]}) as answer:
        events = sse_events(answer)
    names = [name for name, _ in events]
    assert names[2:8] == ["response.output_item.added", "response.file_search_call.in_progress",
                          "response.file_search_call.searching", "response.file_search_call.completed",
                          "response.output_item.done", "response.output_item.added"]
    assert names[8:] == ["response.function_call_arguments.delta", "response.function_call_arguments.done",
                         "response.output_item.done", "response.completed"]
    assert all(name == data["type"] for name, data in events)  # type: ignore[index]
    model.say(Turn(status=500), Turn(status=500), Turn(status=500), Turn(status=500))
    with pytest.raises(openai.APIError), client.responses.stream(model="m", input="fail") as stream:
        for _ in stream:
            pass


def test_the_agents_sdk_runs_an_agent_on_toolsheds_hosted_tools(client: OpenAI, flows_server: Server,
                                                                model: ScriptedModel, tmp_path: Path) -> None:
    agents.set_tracing_disabled(True)  # it would upload traces to OpenAI
    (tmp_path / "prices.txt").write_text("Apples cost 3, pears cost 5 and plums cost 10.")
    store = client.vector_stores.create(name="prices")
    client.vector_stores.files.upload_and_poll(vector_store_id=store.id, file=(tmp_path / "prices.txt").open("rb"))
    model.say(Turn(tool_calls=[("file_search", '{"query": "fruit prices"}')]),
              code_turn("import statistics\nprint(statistics.mean([3, 5, 10]))"), Turn(text="The mean price is 6."))
    openai_client = AsyncOpenAI(base_url=f"{flows_server.base_url}/v1", api_key="unused", max_retries=0)
    agent = agents.Agent(name="analyst", instructions="Use code for arithmetic.",
                         model=agents.OpenAIResponsesModel(model="scripted", openai_client=openai_client),
                         tools=[agents.CodeInterpreterTool(tool_config={"type": "code_interpreter",
                                                                        "container": {"type": "auto"}}),
                                agents.FileSearchTool(vector_store_ids=[store.id], include_search_results=True)])
    result = asyncio.run(agents.Runner.run(agent, "What is the mean of the fruit prices in my file?"))
    assert result.final_output == "The mean price is 6."
    kinds = [item.raw_item.type for item in result.new_items]
    assert kinds == ["file_search_call", "code_interpreter_call", "message"]
    sent = model.requests[-1]["messages"]
    assert sent[0] == {"role": "system", "content": "Use code for arithmetic."}
    assert "plums cost 10" in sent[3]["content"] and sent[-1]["content"] == "6\n"


def test_a_response_live_when_the_server_stops_is_failed_after_the_restart(docker_ready: None, model: ScriptedModel,
                                                                         tmp_path: Path) -> None:
    with running_server(tmp_path / "server", TOOLSHED_MODEL_BASE_URL=model.base_url) as srv:
        model.say(Turn(text="never", delay=60))
        asked = len(model.requests)
        client = sdk_client(srv)
        r = client.responses.create(model="m", input="Wait.", background=True)
        wait_for(client, r.id, {"in_progress"})
        deadline = time.monotonic() + 60
        while len(model.requests) == asked:
            assert time.monotonic() < deadline, "the response never called the model"
            time.sleep(0.05)
        srv.stop()
        srv.start()
        after = sdk_client(srv).responses.retrieve(r.id)
    assert after.status == "failed" and after.error is not None
    assert "server stopped" in after.error.message
