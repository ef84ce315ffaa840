"""Runs driven by the official SDK's helpers against the real server, real sandboxes and a scripted model over
loopback HTTP: text answers, code_interpreter steps, function calls with requires_action, the thread lock, a
dead model endpoint, cancel during a cell, and a restart mid-run."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from openai import AssistantEventHandler, OpenAI
from openai.types.beta import AssistantStreamEvent
from openai.types.beta.threads import Message, Run, Text, TextDelta
from openai.types.beta.threads.runs import RunStep
from typing_extensions import override

from orchestrator.localserver import Server
from tests.conftest import metric_value, running_server, sdk_client, sse_events
from tests.run_helpers import ask
from tests.scripted_model import ScriptedModel, Turn

pytestmark = [pytest.mark.docker, pytest.mark.filterwarnings("ignore::DeprecationWarning")]


@pytest.fixture(scope="module")
def run_server(docker_ready: None, model: ScriptedModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("runs"), TOOLSHED_MODEL_BASE_URL=model.base_url,
                        TOOLSHED_MODEL_MAP=json.dumps({"dead": "http://127.0.0.1:9/v1"}),
                        TOOLSHED_MODEL_MAX_RETRIES="1", TOOLSHED_MODEL_TIMEOUT="10") as srv:
        yield srv


@pytest.fixture(scope="module")
def client(run_server: Server) -> OpenAI:
    return sdk_client(run_server)


def strict(model: type, obj: object) -> None:
    data = obj.model_dump(mode="json")  # type: ignore[attr-defined]
    assert set(data) <= set(model.model_fields), set(data) - set(model.model_fields)


def test_a_text_run_completes_with_the_answer_as_a_message(client: OpenAI, model: ScriptedModel) -> None:
    model.say(Turn(text="x = 1, because 3*1 + 11 = 14."))
    assistant, thread = ask(client, "I need to solve the equation `3x + 11 = 14`.",
                            instructions="You are a personal math tutor.")
    run = client.beta.threads.runs.create_and_poll(thread_id=thread, assistant_id=assistant,
                                                   instructions="Please address the user as Jane Doe.")
    strict(Run, run)
    assert run.status == "completed" and run.usage is not None and run.usage.total_tokens > 0
    assert run.completed_at is not None and run.expires_at is None
    prompt = model.requests[-1]["messages"]
    assert prompt[0] == {"role": "system", "content": "Please address the user as Jane Doe."}
    assert prompt[-1]["content"] == "I need to solve the equation `3x + 11 = 14`."
    [answer, _] = client.beta.threads.messages.list(thread).data
    strict(Message, answer)
    assert (answer.role, answer.run_id, answer.assistant_id) == ("assistant", run.id, assistant)
    assert answer.content[0].text.value == "x = 1, because 3*1 + 11 = 14."
    [step] = client.beta.threads.runs.steps.list(run.id, thread_id=thread).data
    strict(RunStep, step)
    assert step.type == "message_creation" and step.step_details.message_creation.message_id == answer.id


def test_code_interpreter_runs_in_the_threads_sandbox_and_becomes_a_step(client: OpenAI, model: ScriptedModel) -> None:
    model.say(Turn(tool_calls=[("code_interpreter", json.dumps(
        {"code": "open('/mnt/data/result.txt', 'w').write('42')\nprint(6 * 7)"}))]),
        Turn(text="The answer is 42, saved to sandbox:/mnt/data/result.txt."))
    assistant, thread = ask(client, "What is 6 times 7?", tools=[{"type": "code_interpreter"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread, assistant_id=assistant)
    assert run.status == "completed", run.last_error
    assert [t["function"]["name"] for t in model.requests[-2]["tools"]] == ["code_interpreter"]
    assert model.requests[-1]["messages"][-1] == {"role": "tool", "tool_call_id": model.requests[-1]["messages"][-2][
        "tool_calls"][0]["id"], "content": model.requests[-1]["messages"][-1]["content"]}
    assert "42" in model.requests[-1]["messages"][-1]["content"]
    steps = client.beta.threads.runs.steps.list(run.id, thread_id=thread, order="asc").data
    assert [s.type for s in steps] == ["tool_calls", "message_creation"]
    [call] = steps[0].step_details.tool_calls
    assert call.type == "code_interpreter" and call.code_interpreter.outputs[0].logs == "42\n"
    text = client.beta.threads.messages.list(thread).data[0].content[0].text
    [annotation] = text.annotations
    assert annotation.type == "file_path" and text.value[annotation.start_index:annotation.end_index] == \
        "sandbox:/mnt/data/result.txt"
    assert client.files.content(annotation.file_path.file_id).read() == b"42"


def test_function_calls_wait_for_the_callers_outputs_and_lock_the_thread(client: OpenAI, run_server: Server,
                                                                         model: ScriptedModel) -> None:
    weather = {"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}}}}
    model.say(Turn(tool_calls=[("get_weather", '{"city": "Paris"}'), ("get_weather", '{"city": "Rome"}')]),
              Turn(text="Sunny in both."))
    assistant, thread = ask(client, "Weather in Paris and Rome?", tools=[weather])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread, assistant_id=assistant)
    assert run.status == "requires_action"
    calls = run.required_action.submit_tool_outputs.tool_calls
    assert [json.loads(c.function.arguments)["city"] for c in calls] == ["Paris", "Rome"]
    with pytest.raises(openai.BadRequestError, match=f"Can't add messages to {thread} while a run {run.id} is active"):
        client.beta.threads.messages.create(thread, role="user", content="hello?")
    with pytest.raises(openai.BadRequestError, match="already has an active run"):
        client.beta.threads.runs.create(thread_id=thread, assistant_id=assistant)
    with pytest.raises(openai.BadRequestError, match="exactly one output"):
        client.beta.threads.runs.submit_tool_outputs(run.id, thread_id=thread,
                                                     tool_outputs=[{"tool_call_id": calls[0].id, "output": "x"}])
    done = client.beta.threads.runs.submit_tool_outputs_and_poll(run_id=run.id, thread_id=thread, tool_outputs=[
        {"tool_call_id": calls[0].id, "output": "sunny"}, {"tool_call_id": calls[1].id, "output": "sunny"}])
    assert done.status == "completed"
    assert [m["content"] for m in model.requests[-1]["messages"][-2:]] == ["sunny", "sunny"]
    [function_step] = [s for s in client.beta.threads.runs.steps.list(run.id, thread_id=thread).data
                       if s.type == "tool_calls"]
    assert function_step.status == "completed"
    assert [c.function.output for c in function_step.step_details.tool_calls] == ["sunny", "sunny"]
    with pytest.raises(openai.BadRequestError):
        client.beta.threads.runs.submit_tool_outputs(run.id, thread_id=thread, tool_outputs=[])
    client.beta.threads.messages.create(thread, role="user", content="thanks")  # the thread is free again


def test_a_dead_model_endpoint_fails_the_run_and_names_it(client: OpenAI) -> None:
    assistant, thread = ask(client, "hello", model="dead")
    run = client.beta.threads.runs.create_and_poll(thread_id=thread, assistant_id=assistant)
    assert run.status == "failed" and run.failed_at is not None
    assert run.last_error.code == "server_error" and "127.0.0.1:9" in run.last_error.message


def test_cancel_during_a_cell_ends_the_run_within_five_seconds(client: OpenAI, model: ScriptedModel) -> None:
    model.say(Turn(tool_calls=[("code_interpreter", json.dumps({"code": "import time\ntime.sleep(60)"}))]))
    assistant, thread = ask(client, "Wait a minute.", tools=[{"type": "code_interpreter"}])
    run = client.beta.threads.runs.create(thread_id=thread, assistant_id=assistant)
    deadline = time.monotonic() + 60
    while not client.beta.threads.runs.steps.list(run.id, thread_id=thread).data:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    time.sleep(1.0)
    started = time.monotonic()
    cancelled = client.beta.threads.runs.cancel(run.id, thread_id=thread)
    assert cancelled.status == "cancelled" and time.monotonic() - started < 5
    model.say(Turn(text="still here"))
    again = client.beta.threads.runs.create_and_poll(thread_id=thread, assistant_id=assistant)
    assert again.status == "completed"


def test_a_run_live_when_the_server_stops_is_failed_after_the_restart(model: ScriptedModel, docker_ready: None,
                                                                      tmp_path: Path) -> None:
    model.say(Turn(text="slow", delay=30))
    with running_server(tmp_path, TOOLSHED_MODEL_BASE_URL=model.base_url) as srv:
        client = sdk_client(srv)
        assistant, thread = ask(client, "take your time")
        run = client.beta.threads.runs.create(thread_id=thread, assistant_id=assistant)
        time.sleep(1.0)
        srv.stop(kill=True)
        srv.start()
        after = client.beta.threads.runs.retrieve(run.id, thread_id=thread)
        assert after.status == "failed" and "restarted" in after.last_error.message
        model.turns.clear()


def test_a_streamed_run_sends_openais_events_in_order(client: OpenAI, run_server: Server,
                                                      model: ScriptedModel) -> None:
    model.say(Turn(tool_calls=[("code_interpreter", json.dumps({"code": "print(6 * 7)"}))]),
              Turn(text="Done: 42.", pieces=3))
    assistant, thread = ask(client, "6 x 7?", tools=[{"type": "code_interpreter"}])
    with httpx.stream("POST", f"{run_server.base_url}/v1/threads/{thread}/runs", timeout=120,
                      json={"assistant_id": assistant, "stream": True}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response)
    names = [name for name, _ in events]
    assert names == [
        "thread.run.created", "thread.run.queued", "thread.run.in_progress",
        "thread.run.step.created", "thread.run.step.in_progress", "thread.run.step.delta", "thread.run.step.delta",
        "thread.run.step.completed",
        "thread.run.step.created", "thread.run.step.in_progress", "thread.message.created",
        "thread.message.in_progress", "thread.message.delta", "thread.message.delta", "thread.message.delta",
        "thread.message.completed", "thread.run.step.completed", "thread.run.completed", "done"]
    header, output = (data["delta"]["step_details"]["tool_calls"][0] for name, data in events  # type: ignore[index]
                      if name == "thread.run.step.delta")
    assert header["index"] == 0 and header["code_interpreter"]["input"] == "print(6 * 7)"
    assert output["code_interpreter"]["outputs"] == [{"index": 0, "type": "logs", "logs": "42\n"}]
    pieces = [data["delta"]["content"][0] for name, data in events if name == "thread.message.delta"]  # type: ignore[index]
    assert "".join(p["text"]["value"] for p in pieces) == "Done: 42." and all(p["index"] == 0 for p in pieces)
    assert events[-1] == ("done", "[DONE]")


def test_the_sdk_event_handler_submits_outputs_inside_on_event(client: OpenAI, model: ScriptedModel) -> None:
    weather = {"type": "function", "function": {"name": "get_temperature", "parameters": {"type": "object"}}}
    model.say(Turn(text="Let me check. ", tool_calls=[("get_temperature", "{}")]), Turn(text="It is 57F."))
    assistant, thread = ask(client, "How warm is it?", tools=[weather])
    collected: list[str] = []

    class Handler(AssistantEventHandler):
        @override
        def on_text_delta(self, delta: TextDelta, snapshot: Text) -> None:
            collected.append(delta.value or "")

        @override
        def on_event(self, event: AssistantStreamEvent) -> None:
            if event.event == "thread.run.requires_action":
                calls = event.data.required_action.submit_tool_outputs.tool_calls
                with client.beta.threads.runs.submit_tool_outputs_stream(
                        thread_id=event.data.thread_id, run_id=event.data.id, event_handler=Handler(),
                        tool_outputs=[{"tool_call_id": call.id, "output": "57"} for call in calls]) as stream:
                    stream.until_done()

    with client.beta.threads.runs.stream(thread_id=thread, assistant_id=assistant, event_handler=Handler()) as stream:
        stream.until_done()
        first = stream.get_final_run()
    assert first.status == "requires_action"
    assert "".join(collected) == "Let me check. It is 57F."
    [final] = client.beta.threads.runs.list(thread).data
    assert final.status == "completed"
    texts = [m.content[0].text.value for m in client.beta.threads.messages.list(thread, order="asc").data]
    assert texts == ["How warm is it?", "Let me check. ", "It is 57F."]


def test_tool_choice_and_response_format_reach_the_model(client: OpenAI, run_server: Server,
                                                         model: ScriptedModel) -> None:
    model.say(Turn(tool_calls=[("code_interpreter", json.dumps({"code": "print(1)"}))]), Turn(text='{"a": 1}'))
    assistant, thread = ask(client, "JSON please", tools=[{"type": "code_interpreter"}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread, assistant_id=assistant, tool_choice={"type": "code_interpreter"},
        response_format={"type": "json_object"})
    assert run.status == "completed" and run.tool_choice.type == "code_interpreter"
    sent = model.requests[-2]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "code_interpreter"}}
    assert sent["response_format"] == {"type": "json_object"}
    for choice in ({"type": "function", "function": {"name": "nope"}}, {"type": "file_search"}, "sometimes"):
        response = httpx.post(f"{run_server.base_url}/v1/threads/{thread}/runs",
                              json={"assistant_id": assistant, "tool_choice": choice})
        assert response.status_code == 400, choice
        assert response.json()["error"]["message"]


def test_a_message_cut_by_a_cancel_is_incomplete(client: OpenAI, model: ScriptedModel) -> None:
    model.say(Turn(text="one two three four five six", pieces=6, piece_delay=2.0))
    assistant, thread = ask(client, "Count slowly.")
    run = client.beta.threads.runs.create(thread_id=thread, assistant_id=assistant)
    deadline = time.monotonic() + 30
    while len(client.beta.threads.messages.list(thread).data) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert client.beta.threads.runs.cancel(run.id, thread_id=thread).status == "cancelled"
    [cut, _] = client.beta.threads.messages.list(thread).data
    assert cut.status == "incomplete" and cut.incomplete_details.reason == "run_cancelled"
    assert cut.incomplete_at is not None


def test_metrics_count_runs_model_calls_and_tool_calls(run_server: Server) -> None:
    text = httpx.get(f"{run_server.base_url}/metrics").text
    assert metric_value(text, 'toolshed_runs_total{status="completed"}') >= 3
    assert metric_value(text, 'toolshed_runs_total{status="failed"}') >= 1
    assert metric_value(text, 'toolshed_runs_total{status="cancelled"}') >= 1
    assert metric_value(text, 'toolshed_run_tool_calls_total{tool="code_interpreter"}') >= 2
    assert metric_value(text, 'toolshed_run_tool_calls_total{tool="function"}') >= 2
    assert metric_value(text, 'toolshed_model_tokens_total{kind="prompt"}') > 0
    assert metric_value(text, "toolshed_model_call_seconds_count") >= 3
