"""The Responses API through the official `openai` SDK against the real server, real sandboxes and retrieval, and
the scripted model over loopback: hosted code_interpreter and file_search, function calls handed back,
previous_response_id, streaming in OpenAI's order, annotations exact to the character."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from openai import OpenAI
from openai.types.responses import Response

from orchestrator.localserver import Server
from tests.conftest import running_server, sdk_client
from tests.scripted_model import ScriptedModel, Turn

CODE = {"type": "code_interpreter", "container": {"type": "auto"}}
RATE = {"type": "function", "name": "get_rate", "description": "FX rate",
        "parameters": {"type": "object", "properties": {"pair": {"type": "string"}}, "required": ["pair"]}}


@pytest.fixture(scope="module")
def responses_server(docker_ready: None, model: ScriptedModel,
                     tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("responses"), TOOLSHED_MODEL_BASE_URL=model.base_url) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(responses_server: Server) -> OpenAI:
    return sdk_client(responses_server)


def raw(server: Server, response_id: str, **params: object) -> dict:
    """The Response as JSON on the wire, checked against the SDK's own model."""
    answer = httpx.get(f"{server.base_url}/v1/responses/{response_id}", params=params, timeout=30)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    Response.model_validate(body)
    return body


def code_turn(code: str) -> Turn:
    return Turn(tool_calls=[("code_interpreter", json.dumps({"code": code}))])


def test_the_quick_example_runs_code_and_answers(client: OpenAI, responses_server: Server,
                                                 model: ScriptedModel) -> None:
    model.say(code_turn("x = (14 - 11) / 3\nprint(f'x = {x:g}')"), Turn(text="x = 1"))
    r = client.responses.create(model="qwen2.5:7b", input="Solve 3x + 11 = 14 with code.", tools=[CODE],
                                include=["code_interpreter_call.outputs"])
    assert r.status == "completed" and r.output_text == "x = 1"
    call, message = r.output
    assert call.type == "code_interpreter_call" and call.status == "completed"
    assert call.code == "x = (14 - 11) / 3\nprint(f'x = {x:g}')"
    assert call.outputs is not None and [o.model_dump() for o in call.outputs] == [{"type": "logs", "logs": "x = 1\n"}]
    assert message.type == "message" and message.status == "completed"
    assert r.usage is not None and r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens
    sent = model.requests[-1]
    assert sent["model"] == "qwen2.5:7b" and sent["messages"][0] == {"role": "user",
                                                                      "content": "Solve 3x + 11 = 14 with code."}
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "tool"]
    assert raw(responses_server, r.id)["output"][0]["outputs"] is None  # not asked to include them
    assert raw(responses_server, r.id, **{"include[]": "code_interpreter_call.outputs"})["output"][0]["outputs"]


def test_a_written_file_is_cited_exactly_and_downloads(client: OpenAI, model: ScriptedModel) -> None:
    model.say(code_turn("open('/mnt/data/sums.csv', 'w').write('roll,sum\\n1,7\\n')"),
              Turn(text="The mean is 7. [sums.csv](sandbox:/mnt/data/sums.csv)"))
    r = client.responses.create(model="m", input="Roll dice and give me a CSV.", tools=[CODE])
    message = r.output[-1]
    [part] = message.content
    [citation] = part.annotations
    assert citation.type == "container_file_citation" and citation.filename == "sums.csv"
    assert part.text[citation.start_index:citation.end_index] == "sandbox:/mnt/data/sums.csv"
    assert citation.container_id == r.output[0].container_id
    content = client.containers.files.content.retrieve(citation.file_id, container_id=citation.container_id)
    assert content.read() == b"roll,sum\n1,7\n"


def test_file_search_cites_the_uploaded_file_without_markers(client: OpenAI, model: ScriptedModel,
                                                             tmp_path: Path) -> None:
    handbook = tmp_path / "handbook.md"
    handbook.write_text("# Pay\n\nOvertime is paid at one and a half times the base rate.\n")
    store = client.vector_stores.create(name="handbook")
    uploaded = client.vector_stores.files.upload_and_poll(vector_store_id=store.id, file=handbook.open("rb"))
    model.say(Turn(tool_calls=[("file_search", json.dumps({"query": "overtime pay rate"}))]),
              Turn(text="Overtime pays 1.5 times the base rate【0:0†handbook.md】."))
    r = client.responses.create(model="m", input="What does the handbook say about overtime?",
                                tools=[{"type": "file_search", "vector_store_ids": [store.id]}],
                                include=["file_search_call.results"])
    search, message = r.output
    assert search.type == "file_search_call" and search.queries == ["overtime pay rate"]
    assert search.results is not None and search.results[0].file_id == uploaded.id
    assert "one and a half times" in (search.results[0].text or "")
    assert r.output_text == "Overtime pays 1.5 times the base rate."
    [citation] = message.content[0].annotations
    assert citation.type == "file_citation" and citation.file_id == uploaded.id
    assert citation.filename == "handbook.md" and citation.index == len("Overtime pays 1.5 times the base rate")


def test_a_function_call_round_trip_with_previous_response_id(client: OpenAI, responses_server: Server,
                                                             model: ScriptedModel) -> None:
    model.say(Turn(tool_calls=[("get_rate", '{"pair": "EURUSD"}')]), Turn(text="EURUSD is 1.09."))
    first = client.responses.create(model="m", input="What is EURUSD?", tools=[RATE], instructions="Be brief.")
    assert first.status == "completed"
    [call] = first.output
    assert call.type == "function_call" and call.name == "get_rate" and call.arguments == '{"pair": "EURUSD"}'
    second = client.responses.create(model="m", previous_response_id=first.id, tools=[RATE], input=[
        {"type": "function_call_output", "call_id": call.call_id, "output": "1.09"}])
    assert second.output_text == "EURUSD is 1.09." and second.previous_response_id == first.id
    sent = model.requests[-1]["messages"]
    assert sent[0]["role"] == "user" and sent[0]["content"] == "What is EURUSD?"  # instructions are not inherited
    assert sent[1]["tool_calls"][0]["id"] == call.call_id
    assert sent[2] == {"role": "tool", "tool_call_id": call.call_id, "content": "1.09"}
    own = client.responses.input_items.list(second.id)
    assert [item.type for item in own.data] == ["function_call_output"]  # its own input only, not the chain
    assert client.responses.retrieve(second.id).output_text == "EURUSD is 1.09."
    raw(responses_server, second.id)


def test_a_streamed_code_turn_sends_openais_events_in_order(client: OpenAI, model: ScriptedModel) -> None:
    model.say(code_turn("print(6 * 7)"), Turn(text="The answer is 42.", pieces=5))
    with client.responses.stream(model="m", input="Compute 6*7.", tools=[CODE],
                                 include=["code_interpreter_call.outputs"]) as stream:
        events = list(stream)
        final = stream.get_final_response()
    names = [event.type for event in events]
    assert names[:2] == ["response.created", "response.in_progress"]
    assert names[2:10] == [
        "response.output_item.added", "response.code_interpreter_call.in_progress",
        "response.code_interpreter_call_code.delta", "response.code_interpreter_call_code.done",
        "response.code_interpreter_call.interpreting", "response.code_interpreter_call.completed",
        "response.output_item.done", "response.output_item.added"]
    assert names[10] == "response.content_part.added"
    assert names[-4:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done",
                          "response.completed"]
    assert [event.sequence_number for event in events] == list(range(len(events)))
    deltas = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    assert deltas == final.output_text == "The answer is 42."
    assert final.output[0].outputs[0].logs == "42\n"  # type: ignore[union-attr]


def test_conversations_collect_each_responses_items(client: OpenAI, model: ScriptedModel) -> None:
    conversation = client.conversations.create(metadata={"topic": "greetings"},
                                               items=[{"role": "user", "content": "My name is Ada."}])
    model.say(Turn(text="Hello Ada."))
    r = client.responses.create(model="m", input="Greet me.", conversation=conversation.id)
    assert r.conversation is not None and r.conversation.id == conversation.id
    assert [m["content"] for m in model.requests[-1]["messages"]] == ["My name is Ada.", "Greet me."]
    items = client.conversations.items.list(conversation.id, order="asc")
    assert [item.type for item in items.data] == ["message", "message", "message"]
    assert items.data[-1].content[0].text == "Hello Ada."  # type: ignore[union-attr]
    assert client.conversations.retrieve(conversation.id).metadata == {"topic": "greetings"}
    client.conversations.delete(conversation.id)
    with pytest.raises(openai.NotFoundError):
        client.conversations.retrieve(conversation.id)


def test_bad_requests_get_openais_errors(client: OpenAI, responses_server: Server, model: ScriptedModel) -> None:
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve("resp_missing")
    for body, param in [
        ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"input": [{"type": "telepathy"}]}, "input[0].type"),
        ({"input": [{"type": "function_call_output", "call_id": "call_nope", "output": "x"}]}, "input"),
        ({"previous_response_id": "resp_missing"}, "previous_response_id"),
        ({"previous_response_id": "resp_a", "conversation": "conv_b"}, "previous_response_id"),
        ({"include": ["everything"]}, "include"),
        ({"tools": [{"type": "code_interpreter"}]}, "tools[0].container"),
    ]:
        answer = httpx.post(f"{responses_server.base_url}/v1/responses", json={"model": "m", "input": "hi", **body},
                            timeout=30)
        assert answer.status_code == 400, (body, answer.text)
        assert answer.json()["error"]["param"] == param and answer.json()["error"]["type"] == "invalid_request_error"
    missing = httpx.post(f"{responses_server.base_url}/v1/responses", timeout=30, json={
        "model": "m", "input": "hi", "tools": [{"type": "file_search", "vector_store_ids": ["vs_missing"]}]})
    assert missing.status_code == 404


def test_a_dead_model_endpoint_fails_the_response_naming_it(docker_ready: None, tmp_path: Path) -> None:
    with running_server(tmp_path, TOOLSHED_MODEL_BASE_URL="http://127.0.0.1:9/v1",
                        TOOLSHED_MODEL_MAX_RETRIES="0") as srv:
        r = sdk_client(srv).responses.create(model="m", input="hi")
    assert r.status == "failed" and r.error is not None and r.error.code == "server_error"
    assert "http://127.0.0.1:9/v1" in r.error.message
