"""Issue 27's run items, through the official SDK against a real server and a scripted model over loopback: a model
that will not stop writing (9), a server stopped mid-run (17), files announced to the model (18), a run that waits
for its thread's store (19), and the newest messages kept in the prompt (20)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from openai import OpenAI

from orchestrator.localserver import Server
from tests.conftest import running_server, sdk_client
from tests.run_helpers import ask
from tests.scripted_model import ScriptedModel, Turn

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def run_server(docker_ready: None, model: ScriptedModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("limits"), TOOLSHED_MODEL_BASE_URL=model.base_url) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(run_server: Server) -> OpenAI:
    return sdk_client(run_server)


def test_a_run_waits_for_the_store_its_message_just_filled(client: OpenAI, model: ScriptedModel,
                                                          tmp_path: Path) -> None:
    # The module's first ingestion (the embedding model loads with it) of a long file: still indexing when the
    # run starts, unless the run waits.
    filler = "".join(f"Paragraph {n} is about the weather in town number {n}, which was mild.\n\n" for n in range(3000))
    document = tmp_path / "handbook.txt"
    document.write_text(filler + "The secret launch code of the handbook is PELICAN-42.\n")
    uploaded = client.files.create(file=document.open("rb"), purpose="assistants")
    model.say(Turn(tool_calls=[("file_search", '{"query": "secret launch code of the handbook"}')]),
              Turn(text="It is PELICAN-42."))
    assistant = client.beta.assistants.create(model="scripted", tools=[{"type": "file_search"}])
    thread = client.beta.threads.create()
    client.beta.threads.messages.create(thread.id, role="user", content="What is the launch code?", attachments=[
        {"file_id": uploaded.id, "tools": [{"type": "file_search"}]}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status == "completed"
    [tool_output] = [m for m in model.requests[-1]["messages"] if m["role"] == "tool"]
    assert "PELICAN-42" in tool_output["content"]


def test_files_for_code_interpreter_are_named_to_the_model(client: OpenAI, model: ScriptedModel,
                                                          tmp_path: Path) -> None:
    (tmp_path / "sales.csv").write_text("month,total\njan,3\n")
    uploaded = client.files.create(file=(tmp_path / "sales.csv").open("rb"), purpose="assistants")
    model.say(Turn(text="Noted."))
    assistant = client.beta.assistants.create(model="scripted", tools=[{"type": "code_interpreter"}],
                                              instructions="Be brief.")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Sum the totals.", "attachments": [
        {"file_id": uploaded.id, "tools": [{"type": "code_interpreter"}]}]}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status == "completed"
    system = model.requests[-1]["messages"][0]
    assert system["role"] == "system" and system["content"].startswith("Be brief.")
    assert "/mnt/data/sales.csv" in system["content"]


def test_a_model_that_will_not_stop_ends_the_run_and_the_server_stays_responsive(
        client: OpenAI, run_server: Server, model: ScriptedModel) -> None:
    endless = "x" * (32 << 20)
    model.say(Turn(text=endless, pieces=4096))
    slowest = 0.0
    done = threading.Event()

    def watch_health() -> None:
        nonlocal slowest
        with httpx.Client(base_url=run_server.base_url, timeout=30) as http:
            while not done.is_set():
                started = time.perf_counter()
                assert http.get("/health").status_code == 200
                slowest = max(slowest, time.perf_counter() - started)
                time.sleep(0.05)

    watcher = threading.Thread(target=watch_health)
    watcher.start()
    try:
        assistant, thread = ask(client, "Write forever.")
        run = client.beta.threads.runs.create_and_poll(thread_id=thread, assistant_id=assistant, poll_interval_ms=200)
    finally:
        done.set()
        watcher.join()
    assert run.status == "incomplete" and run.incomplete_details.reason == "max_completion_tokens"
    message = client.beta.threads.messages.list(thread).data[0]
    assert message.status == "incomplete"
    assert 1_000_000 <= len(message.content[0].text.value) < 1_200_000  # the default cap, TOOLSHED_RUN_MAX_OUTPUT_CHARS
    assert slowest < 0.5, f"/health took {slowest:.3f} s while the model streamed"


def test_additional_messages_are_capped_as_openai_does(client: OpenAI) -> None:
    assistant, thread = ask(client, "Hi.")
    with pytest.raises(openai.BadRequestError) as refused:
        client.beta.threads.runs.create(thread_id=thread, assistant_id=assistant, additional_messages=[
            {"role": "user", "content": f"m{n}"} for n in range(33)])
    assert refused.value.body["param"] == "additional_messages"  # type: ignore[index]
    assert refused.value.body["code"] == "array_above_max_length"  # type: ignore[index]
    assert client.beta.threads.runs.list(thread).data == []


def test_the_newest_message_is_always_in_the_prompt(client: OpenAI, run_server: Server, model: ScriptedModel) -> None:
    assistant, thread = ask(client, "message 0")
    with httpx.Client(base_url=f"{run_server.base_url}/v1", timeout=60,
                      headers={"OpenAI-Beta": "assistants=v2"}) as http:
        for n in range(1, 10_001):
            added = http.post(f"/threads/{thread}/messages", json={"role": "user", "content": f"message {n}"})
            added.raise_for_status()
    model.say(Turn(text="Read them."))
    run = client.beta.threads.runs.create_and_poll(thread_id=thread, assistant_id=assistant)
    assert run.status == "completed"
    sent = [m["content"] for m in model.requests[-1]["messages"] if m["role"] == "user"]
    assert sent[-1] == "message 10000"
    assert sent == [f"message {n}" for n in range(10_001 - len(sent), 10_001)]  # the oldest went, in order


def test_a_run_live_when_the_server_stops_ends_failed_saying_so(docker_ready: None, model: ScriptedModel,
                                                               tmp_path: Path) -> None:
    with running_server(tmp_path / "server", TOOLSHED_MODEL_BASE_URL=model.base_url) as srv:
        client = sdk_client(srv)
        model.say(Turn(text="too late", delay=60))
        assistant, thread = ask(client, "Take your time.")
        run = client.beta.threads.runs.create(thread_id=thread, assistant_id=assistant)
        deadline = time.monotonic() + 30
        while client.beta.threads.runs.retrieve(run.id, thread_id=thread).status != "in_progress":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        srv.stop()  # SIGTERM
        srv.start()
        ended = sdk_client(srv).beta.threads.runs.retrieve(run.id, thread_id=thread)
    assert ended.status == "failed"
    assert ended.last_error is not None and ended.last_error.code == "server_error"
    assert "server stopped" in ended.last_error.message
