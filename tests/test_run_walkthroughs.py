"""OpenAI's Assistants walkthroughs, unchanged, against the real server with real sandboxes and real retrieval:
the math tutor, a CSV in and a plot and a file out, and one streamed run that searches a PDF, runs code and calls
the caller's function, ending in a message whose citations and file paths are exact to the character."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openai import OpenAI
from openai.types.beta.threads import ImageFileContentBlock, Message, TextContentBlock
from openai.types.beta.threads.runs import RunStep

from orchestrator.localserver import Server
from tests.conftest import running_server, sdk_client, sse_events
from tests.datasets import DOCS
from tests.scripted_model import ScriptedModel, Turn

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
PDF = DOCS / "pdf" / "arxiv-1706.03762-attention-is-all-you-need.pdf"
PLOT = ("import matplotlib.pyplot as plt\nimport csv\n"
        "rows = list(csv.DictReader(open('/mnt/data/sales.csv')))\n"
        "plt.plot([r['month'] for r in rows], [float(r['units']) for r in rows])\n"
        "plt.savefig('/mnt/data/sales.png')\nplt.show()\n")


@pytest.fixture(scope="module")
def run_server(docker_ready: None, embedder: object, model: ScriptedModel,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("walkthroughs"), TOOLSHED_MODEL_BASE_URL=model.base_url) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(run_server: Server) -> OpenAI:
    return sdk_client(run_server)


def test_the_math_tutor(client: OpenAI, model: ScriptedModel) -> None:
    model.say(Turn(tool_calls=[("code_interpreter", json.dumps({"code": "x = (14 - 11) / 3\nprint(x)"}))]),
              Turn(text="Jane Doe, the solution is x = 1."))
    assistant = client.beta.assistants.create(
        name="Math Tutor", model="qwen2.5:7b", tools=[{"type": "code_interpreter"}],
        instructions="You are a personal math tutor. Write and run code to answer math questions.")
    thread = client.beta.threads.create()
    client.beta.threads.messages.create(thread.id, role="user", content="I need to solve the equation `3x + 11 = 14`.")
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                   instructions="Please address the user as Jane Doe.")
    assert run.status == "completed" and run.model == "qwen2.5:7b"
    assert model.requests[-2]["messages"][0] == {"role": "system", "content": "Please address the user as Jane Doe."}
    assert model.requests[-2]["model"] == "qwen2.5:7b"
    answer = client.beta.threads.messages.list(thread.id).data[0]
    assert answer.role == "assistant" and answer.content[0].text.value == "Jane Doe, the solution is x = 1."
    code_step = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id, order="asc").data[0]
    [call] = code_step.step_details.tool_calls
    assert call.code_interpreter.input.startswith("x = (14 - 11) / 3")
    assert call.code_interpreter.outputs[0].logs == "1.0\n"


def test_a_csv_in_becomes_a_plot_and_a_file_out(client: OpenAI, model: ScriptedModel, tmp_path: Path) -> None:
    csv = tmp_path / "sales.csv"
    csv.write_text("month,units\nJan,3\nFeb,5\nMar,4\n")
    uploaded = client.files.create(file=csv.open("rb"), purpose="assistants")
    answer = "Here is the chart: [sales.png](sandbox:/mnt/data/sales.png). February sold best."
    model.say(Turn(tool_calls=[("code_interpreter", json.dumps({"code": PLOT}))]), Turn(text=answer))
    assistant = client.beta.assistants.create(model="scripted", tools=[{"type": "code_interpreter"}],
                                              instructions="You are a data analyst.")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Plot the units sold per month.",
                                                   "attachments": [{"file_id": uploaded.id,
                                                                    "tools": [{"type": "code_interpreter"}]}]}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status == "completed", run.last_error
    message = client.beta.threads.messages.list(thread.id).data[0]
    text, figure = message.content
    assert isinstance(text, TextContentBlock) and isinstance(figure, ImageFileContentBlock)
    assert client.files.content(figure.image_file.file_id).read().startswith(b"\x89PNG")
    [link] = text.text.annotations
    assert text.text.value[link.start_index:link.end_index] == link.text == "sandbox:/mnt/data/sales.png"
    assert client.files.content(link.file_path.file_id).read().startswith(b"\x89PNG")
    [call] = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id, order="asc").data[0] \
        .step_details.tool_calls
    assert [output.type for output in call.code_interpreter.outputs] == ["image"]


def ready_store(client: OpenAI, path: Path) -> tuple[str, str]:
    uploaded = client.files.create(file=path.open("rb"), purpose="assistants")
    store = client.vector_stores.create(name="papers", file_ids=[uploaded.id])
    deadline = time.monotonic() + 300
    while client.vector_stores.retrieve(store.id).file_counts.completed < 1:
        assert time.monotonic() < deadline
        time.sleep(0.5)
    return uploaded.id, store.id


def test_a_streamed_run_searches_runs_code_calls_a_function_and_cites_exactly(
        client: OpenAI, run_server: Server, model: ScriptedModel) -> None:
    pdf_id, store_id = ready_store(client, PDF)
    asked = len(model.requests)
    clock = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}
    model.say(Turn(tool_calls=[("file_search", json.dumps({"query": "how is dot-product attention scaled"}))]),
              Turn(tool_calls=[("code_interpreter", json.dumps({
                  "code": "import math\n_ = open('/mnt/data/scale.txt', 'w').write(str(1 / math.sqrt(64)))"}))]),
              Turn(tool_calls=[("get_time", "{}")]))
    assistant = client.beta.assistants.create(
        model="scripted", tools=[{"type": "file_search"}, {"type": "code_interpreter"}, clock],
        tool_resources={"file_search": {"vector_store_ids": [store_id]}})
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "How is attention scaled?"}])
    url = f"{run_server.base_url}/v1/threads/{thread.id}/runs"
    with httpx.stream("POST", url, timeout=120, json={"assistant_id": assistant.id, "stream": True}) as response:
        first = sse_events(response)
    step_events = ["thread.run.step.created", "thread.run.step.in_progress", "thread.run.step.delta"]
    assert [name for name, _ in first] == [
        "thread.run.created", "thread.run.queued", "thread.run.in_progress",
        *step_events, "thread.run.step.completed",  # file_search
        *step_events, "thread.run.step.completed",  # code_interpreter: its input; it prints nothing
        "thread.run.step.created", "thread.run.step.in_progress", "thread.run.requires_action", "done"]
    searched = RunStep.model_validate(first[6][1])
    [search_call] = searched.step_details.tool_calls  # type: ignore[union-attr]
    assert search_call.file_search.ranking_options.ranker == "default_2024_08_21"
    assert all(result.content is None for result in search_call.file_search.results)  # not asked to include
    marker = f"【0:0†{PDF.name}】"
    assert marker in model.requests[asked + 1]["messages"][-1]["content"]  # what the model read names its markers

    run = first[-2][1]
    [call] = run["required_action"]["submit_tool_outputs"]["tool_calls"]  # type: ignore[index]
    answer = (f"Attention divides the dot products by sqrt(d_k){marker}, which is "
              f"sandbox:/mnt/data/scale.txt for d_k = 64, as of noon.")
    model.say(Turn(text=answer, pieces=5))
    with httpx.stream("POST", f"{url}/{run['id']}/submit_tool_outputs", timeout=120, json={  # type: ignore[index]
            "stream": True, "tool_outputs": [{"tool_call_id": call["id"], "output": "12:00"}]}) as response:
        second = sse_events(response)
    assert [name for name, _ in second] == [
        "thread.run.step.completed", "thread.run.queued", "thread.run.in_progress",
        "thread.run.step.created", "thread.run.step.in_progress", "thread.message.created",
        "thread.message.in_progress", *["thread.message.delta"] * 5, "thread.message.completed",
        "thread.run.step.completed", "thread.run.completed", "done"]

    message = Message.model_validate(second[-4][1])
    text = message.content[0].text  # type: ignore[union-attr]
    citation, path = text.annotations
    assert text.value[citation.start_index:citation.end_index] == citation.text == marker
    assert citation.file_citation.file_id == pdf_id  # type: ignore[union-attr]
    assert text.value[path.start_index:path.end_index] == path.text == "sandbox:/mnt/data/scale.txt"
    assert client.files.content(path.file_path.file_id).read() == b"0.125"  # type: ignore[union-attr]

    steps = client.beta.threads.runs.steps.list(run["id"], thread_id=thread.id, order="asc",  # type: ignore[index]
                                                include=["step_details.tool_calls[*].file_search.results[*].content"])
    results = steps.data[0].step_details.tool_calls[0].file_search.results  # type: ignore[union-attr]
    assert results and all(r.content and r.content[0].text for r in results)
    assert results[0].file_id == pdf_id and results[0].file_name == PDF.name
