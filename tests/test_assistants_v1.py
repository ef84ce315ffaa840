"""Issue 28: the Assistants API v1 seed flows, run unchanged by the real openai==1.2.3 (its own venv, installed by
`make test` into build/openai-v1) against the real server, real sandboxes, real retrieval and the scripted model;
then the same objects read back through v2 with today's SDK. Wrong-version fields are 400s with `param`."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI

from orchestrator.localserver import Server
from tests.conftest import running_server, sdk_client
from tests.scripted_model import ScriptedModel, Turn

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
ROOT = Path(__file__).resolve().parents[1]
V1_PYTHON = ROOT / "build" / "openai-v1" / "bin" / "python"
FLOWS = ROOT / "tests" / "openai_v1" / "flows.py"
HANDBOOK = ("Employee handbook.\n\nOvertime is paid at 1.5 times the base rate for every hour beyond forty in a "
            "week.\n\nEvery employee gets 25 days of paid vacation per year.\n")
BEST_MONTH = ("import csv\nrows = list(csv.DictReader(open('/mnt/data/sales.csv')))\n"
              "best = max(rows, key=lambda r: int(r['units']))['month']\n"
              "_ = open('/mnt/data/best.txt', 'w').write(best)\nprint(best)\n")


@pytest.fixture(scope="module")
def v1_server(docker_ready: None, embedder: object, model: ScriptedModel,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("assistants-v1"), TOOLSHED_MODEL_BASE_URL=model.base_url) as srv:
        yield srv


@pytest.fixture(scope="module")
def v2(v1_server: Server) -> OpenAI:
    return sdk_client(v1_server)


def old_sdk(server: Server, flow: str, **args: Any) -> dict[str, Any]:
    """Run one flow of tests/openai_v1/flows.py with openai 1.2.3; what its models parsed, as JSON."""
    if not V1_PYTHON.exists():
        pytest.fail("openai==1.2.3 is not installed: `make test` installs it into build/openai-v1")
    env = {"PATH": os.environ.get("PATH", ""), "OPENAI_BASE_URL": f"{server.base_url}/v1",
           "OPENAI_API_KEY": "unused"}
    done = subprocess.run([str(V1_PYTHON), str(FLOWS), flow, json.dumps(args)], capture_output=True, text=True,
                          timeout=900, env=env, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_the_math_tutor_runs_unchanged_on_openai_1_2_3(v1_server: Server, v2: OpenAI, model: ScriptedModel) -> None:
    code = "x = (14 - 11) / 3\nprint(x)"
    model.say(Turn(tool_calls=[("code_interpreter", json.dumps({"code": code}))]),
              Turn(text="Jane Doe, the solution is x = 1."))
    got = old_sdk(v1_server, "math_tutor")
    assert (got["status"], got["instructions"], got["run_tools"]) == (
        "completed", "Please address the user as Jane Doe.", ["code_interpreter"])
    assert got["answers"] == [{"class": "MessageContentText", "value": "Jane Doe, the solution is x = 1.",
                               "file_ids": [], "annotations": []}]
    code_step, message_step = got["steps"]
    assert code_step["details"] == "ToolCallsStepDetails" and message_step["details"] == "MessageCreationStepDetails"
    [call] = code_step["calls"]
    assert (call["class"], call["input"]) == ("CodeToolCall", code)
    assert call["outputs"] == [{"class": "CodeInterpreterOutputLogs", "type": "logs", "logs": "1.0\n"}]
    # The same objects through v2.
    assert v2.beta.assistants.retrieve(got["assistant"]).name == "Math Tutor"
    assert v2.beta.threads.runs.retrieve(got["run"], thread_id=got["thread"]).status == "completed"
    assert v2.beta.threads.messages.list(got["thread"]).data[0].content[0].text.value == (  # type: ignore[union-attr]
        "Jane Doe, the solution is x = 1.")


def test_update_adds_retrieval_and_files_and_create_and_run_answers(v1_server: Server, v2: OpenAI,
                                                                   model: ScriptedModel, tmp_path: Path) -> None:
    handbook = tmp_path / "handbook.txt"
    handbook.write_text(HANDBOOK)
    made = v2.beta.assistants.create(model="scripted", name="Tutor", tools=[{"type": "code_interpreter"}])
    got = old_sdk(v1_server, "update", assistant=made.id, path=str(handbook))
    file_id = got["file"]
    assert got["file_status"] == "processed"
    assert (got["tools"], got["tool_classes"]) == (["code_interpreter", "retrieval"],
                                                   ["ToolCodeInterpreter", "ToolRetrieval"])
    assert got["file_ids"] == got["retrieved"] == [file_id]
    assert got["listed"] == [[file_id, made.id, "AssistantFile"]]
    # Through v2: the files are code_interpreter files and, searchable, in the store Toolshed keeps for them.
    seen = v2.beta.assistants.retrieve(made.id)
    assert [tool.type for tool in seen.tools] == ["code_interpreter", "file_search"]
    assert seen.tool_resources.code_interpreter.file_ids == [file_id]  # type: ignore[union-attr]
    [store_id] = seen.tool_resources.file_search.vector_store_ids  # type: ignore[union-attr]
    assert [f.id for f in v2.vector_stores.files.list(store_id)] == [file_id]

    model.say(Turn(text="Hello! Ask me anything about math."))
    ran = old_sdk(v1_server, "create_and_run", assistant=made.id, content="Hi there")
    assert (ran["status"], ran["file_ids"]) == ("completed", [file_id])
    assert [a["value"] for a in ran["answers"]] == ["Hello! Ask me anything about math."]
    assert v2.beta.threads.messages.list(ran["thread"], order="asc").data[0].content[0].text.value == (  # type: ignore[union-attr]
        "Hi there")


def test_retrieval_cites_the_uploaded_file_with_its_quote(v1_server: Server, v2: OpenAI, model: ScriptedModel,
                                                          tmp_path: Path) -> None:
    handbook = tmp_path / "handbook.txt"
    handbook.write_text(HANDBOOK)
    marker = "【0†source】"
    answer = f"Overtime pays 1.5 times the base rate{marker}."
    model.say(Turn(tool_calls=[("file_search", json.dumps({"query": "overtime pay rate"}))]), Turn(text=answer))
    got = old_sdk(v1_server, "retrieval", path=str(handbook), question="How is overtime paid?")
    assert got["status"] == "completed", got["last_error"]
    assert got["file_ids"] == got["files"] == [got["file"]]
    text = got["answer"]
    assert text["class"] == "MessageContentText" and text["value"] == answer
    [citation] = text["annotations"]
    assert citation["class"] == "TextAnnotationFileCitation" and citation["file_id"] == got["file"]
    assert text["value"][citation["start"]:citation["end"]] == citation["text"] == marker
    assert "1.5 times the base rate" in citation["quote"] and citation["quote"] in HANDBOOK
    search_step = got["steps"][0]
    assert [(c["class"], c["type"]) for c in search_step["calls"]] == [("RetrievalToolCall", "retrieval")]
    # Through v2: a file_search step and the same citation.
    steps = v2.beta.threads.runs.steps.list(got["run"], thread_id=got["thread"], order="asc").data
    assert steps[0].step_details.tool_calls[0].type == "file_search"  # type: ignore[union-attr]
    cited = v2.beta.threads.messages.list(got["thread"]).data[0].content[0].text.annotations[0]  # type: ignore[union-attr]
    assert (cited.type, cited.file_citation.file_id, cited.text) == ("file_citation", got["file"], marker)  # type: ignore[union-attr]


def test_a_message_file_is_read_by_code_and_a_generated_file_downloads(v1_server: Server, v2: OpenAI,
                                                                       model: ScriptedModel, tmp_path: Path) -> None:
    sales = tmp_path / "sales.csv"
    sales.write_text("month,units\nJan,3\nFeb,5\nMar,4\n")
    link = "sandbox:/mnt/data/best.txt"
    model.say(Turn(tool_calls=[("code_interpreter", json.dumps({"code": BEST_MONTH}))]),
              Turn(text=f"February sold most: {link}"))
    got = old_sdk(v1_server, "message_files", path=str(sales), content="Which month sold most? Save it to a file.")
    file_id = got["file"]
    assert got["message_file_ids"] == [file_id] and got["retrieved"] == file_id
    assert [row[0] for row in got["listed"]] == [file_id] and got["listed"][0][2] == "MessageFile"
    assert got["status"] == "completed"
    [path] = got["answer"]["annotations"]
    assert path["class"] == "TextAnnotationFilePath"
    assert got["answer"]["value"][path["start"]:path["end"]] == path["text"] == link
    assert got["downloads"] == got["bytes"] == ["Feb"]
    # Through v2: the message's file is an attachment for both tools, and the thread's code_interpreter file.
    question = v2.beta.threads.messages.list(got["thread"], order="asc").data[0]
    assert [(a.file_id, sorted(t.type for t in a.tools or [])) for a in question.attachments or []] == [
        (file_id, ["code_interpreter", "file_search"])]
    thread = v2.beta.threads.retrieve(got["thread"])
    assert thread.tool_resources.code_interpreter.file_ids == [file_id]  # type: ignore[union-attr]


def test_the_function_quiz_requires_action_then_completes(v1_server: Server, v2: OpenAI,
                                                          model: ScriptedModel) -> None:
    model.say(Turn(tool_calls=[("display_quiz", json.dumps({"title": "Algebra"}))]),
              Turn(text="Thanks! The answer was x = 1."))
    got = old_sdk(v1_server, "quiz")
    assert (got["waiting"], got["submitted"], got["status"]) == ("requires_action", "queued", "completed")
    assert got["call"] == ["display_quiz", json.dumps({"title": "Algebra"})]
    function_step, message_step = got["steps"]
    [call] = function_step["calls"]
    assert (call["class"], call["output"], function_step["status"]) == ("FunctionToolCall", "I don't know.",
                                                                        "completed")
    assert message_step["details"] == "MessageCreationStepDetails"
    assert got["answer"]["value"] == "Thanks! The answer was x = 1."


@pytest.mark.parametrize(("beta", "path", "body", "param"), [
    ("assistants=v1", "/v1/assistants", {"model": "m", "tool_resources": {"code_interpreter": {"file_ids": []}}},
     "tool_resources"),
    ("assistants=v1", "/v1/assistants", {"model": "m", "tools": [{"type": "file_search"}]}, "tools.0"),
    ("assistants=v1", "/v1/threads", {"messages": [{"role": "user", "content": "hi", "attachments": []}]},
     "messages.0.attachments"),
    ("assistants=v2", "/v1/assistants", {"model": "m", "file_ids": []}, "file_ids"),
    ("assistants=v2", "/v1/assistants", {"model": "m", "tools": [{"type": "retrieval"}]}, "tools.0"),
    ("assistants=v2", "/v1/threads", {"messages": [{"role": "user", "content": "hi", "file_ids": []}]},
     "messages.0.file_ids"),
])
def test_a_field_of_the_other_version_is_a_400_naming_it(v1_server: Server, beta: str, path: str,
                                                         body: dict[str, Any], param: str) -> None:
    answer = httpx.post(f"{v1_server.base_url}{path}", json=body, headers={"OpenAI-Beta": beta}, timeout=30)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"].startswith(param), error


def test_cancel_and_file_removal_answer_in_v1_shape(v1_server: Server, v2: OpenAI, model: ScriptedModel,
                                                    tmp_path: Path) -> None:
    v1 = httpx.Client(base_url=f"{v1_server.base_url}/v1", headers={"OpenAI-Beta": "assistants=v1"}, timeout=60)
    notes = tmp_path / "notes.txt"
    notes.write_text("Nothing to see.")
    file_id = v2.files.create(file=notes.open("rb"), purpose="assistants").id
    assistant = v1.post("/assistants", json={"model": "scripted", "tools": [{"type": "retrieval"}]}).json()
    attached = v1.post(f"/assistants/{assistant['id']}/files", json={"file_id": file_id}).json()
    assert (attached["object"], attached["assistant_id"]) == ("assistant.file", assistant["id"])
    removed = v1.delete(f"/assistants/{assistant['id']}/files/{file_id}").json()
    assert removed == {"id": file_id, "object": "assistant.file.deleted", "deleted": True}
    assert v1.get(f"/assistants/{assistant['id']}").json()["file_ids"] == []
    assert v1.get(f"/assistants/{assistant['id']}/files/{file_id}").status_code == 404
    [store_id] = v2.beta.assistants.retrieve(assistant["id"]).tool_resources.file_search.vector_store_ids  # type: ignore[union-attr]
    assert list(v2.vector_stores.files.list(store_id)) == []  # the kept store follows the files

    model.say(Turn(text="slow", delay=20))
    run = v1.post("/threads/runs", json={"assistant_id": assistant["id"],
                                         "thread": {"messages": [{"role": "user", "content": "hi"}]}}).json()
    cancelled = v1.post(f"/threads/{run['thread_id']}/runs/{run['id']}/cancel").json()
    assert cancelled["status"] in ("cancelling", "cancelled") and cancelled["file_ids"] == []
    assert [tool["type"] for tool in cancelled["tools"]] == ["retrieval"]


def test_a_deleted_file_leaves_retrieval_and_v2_only_operations_are_not_v1s(v1_server: Server, v2: OpenAI,
                                                                            model: ScriptedModel) -> None:
    v1 = {"OpenAI-Beta": "assistants=v1"}
    with httpx.Client(base_url=f"{v1_server.base_url}/v1", timeout=120) as http:
        kept = v2.files.create(file=("kept.txt", HANDBOOK.encode()), purpose="assistants").id
        gone = v2.files.create(file=("gone.txt", b"soon deleted"), purpose="assistants").id
        assistant = http.post("/assistants", headers=v1, json={
            "model": "scripted", "tools": [{"type": "retrieval"}], "file_ids": [kept, gone]}).json()["id"]
        v2.files.delete(gone)
        thread = http.post("/threads", headers=v1, json={"messages": [{"role": "user", "content": "hi"}]}).json()
        model.say(Turn(text="Hello."))
        run = http.post(f"/threads/{thread['id']}/runs", headers=v1, json={"assistant_id": assistant})
        assert run.status_code == 200, run.text
        message = http.get(f"/threads/{thread['id']}/messages", headers=v1).json()["data"][0]["id"]
        refused = http.delete(f"/threads/{thread['id']}/messages/{message}", headers=v1)
        assert refused.status_code == 404 and "v1" in refused.json()["error"]["message"]
        assert http.get(f"/threads/{thread['id']}/messages/{message}", headers=v1).status_code == 200
