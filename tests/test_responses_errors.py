"""Bad input and races on the Responses face: malformed bodies get a 400 naming the field (never a 500), a
response deleted while its create waits answers in OpenAI's shape, and a conversation deleted mid-response leaves
the response's answer and its stored record the same."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from orchestrator.localserver import Server
from tests.conftest import running_server
from tests.scripted_model import ScriptedModel, Turn

MALFORMED = [
    ({"input": [{"type": "message", "role": "user", "content": "hi", "id": {"x": 1}}]}, "input[0].id"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": ["a"]}]}]},
     "input[0].content[0].file_id"),
    ({"input": [{"role": "user", "content": [{"type": "input_text", "text": 5}]}]}, "input[0].content[0].text"),
    ({"input": [{"role": "user", "content": [{"type": "input_image"}]}]}, "input"),
    ({"input": [{"type": "code_interpreter_call", "id": "ci_1", "outputs": "abc", "status": "completed"}]},
     "input[0].outputs"),
    ({"tools": [{"type": ["x"]}]}, "tools[0].type"),
    ({"tools": [{"type": "function", "name": "f"}], "tool_choice": {"type": "function", "name": ["a"]}},
     "tool_choice.name"),
    ({"tool_choice": {"type": {"a": 1}}}, "tool_choice.type"),
    ({"tool_choice": {"type": "allowed_tools", "tools": ["f"]}}, "tool_choice.tools"),
    ({"text": {"format": "json"}}, "text.format"),
    ({"tools": [{"type": "code_interpreter", "container": {"type": "auto", "memory_limit": ["x"]}}]},
     "tools[0].container.memory_limit"),
    ({"tools": [{"type": "file_search", "vector_store_ids": [["a"]]}]}, "tools[0].vector_store_ids"),
]


@pytest.fixture(scope="module")
def errors_server(docker_ready: None, model: ScriptedModel,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("errors"), TOOLSHED_MODEL_BASE_URL=model.base_url) as srv:
        yield srv


@pytest.mark.parametrize(("body", "param"), MALFORMED)
def test_a_malformed_body_is_a_400_naming_the_field(errors_server: Server, body: dict, param: str) -> None:
    with httpx.Client(base_url=f"{errors_server.base_url}/v1", timeout=30) as http:
        answer = http.post("/responses", json={"model": "m", "input": "hi", **body})
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["param"] == param
        assert http.get("/responses/resp_nothing").status_code == 404  # the connection is still good


@pytest.mark.local_state
def test_a_response_deleted_while_its_create_waits_ends_cancelled(errors_server: Server,
                                                                  model: ScriptedModel) -> None:
    model.say(Turn(text="late", delay=5))
    asked = len(model.requests)
    answers: list[httpx.Response] = []
    waiting = threading.Thread(target=lambda: answers.append(httpx.post(
        f"{errors_server.base_url}/v1/responses", json={"model": "m", "input": "slow"}, timeout=60)))
    waiting.start()
    deadline = time.monotonic() + 30
    while not (live := _live(errors_server)) or len(model.requests) == asked:  # the model is answering it
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert httpx.delete(f"{errors_server.base_url}/v1/responses/{live}", timeout=30).status_code == 200
    waiting.join()
    [answer] = answers
    assert answer.status_code == 200 and answer.json()["status"] == "cancelled"


def test_a_conversation_deleted_mid_response_leaves_one_truth(errors_server: Server, model: ScriptedModel) -> None:
    with httpx.Client(base_url=f"{errors_server.base_url}/v1", timeout=60) as http:
        conversation = http.post("/conversations", json={}).json()["id"]
        model.say(Turn(text="done", delay=2))
        answers: list[httpx.Response] = []
        waiting = threading.Thread(target=lambda: answers.append(http.post("/responses", json={
            "model": "m", "input": "hi", "conversation": conversation})))
        waiting.start()
        time.sleep(1)
        assert http.delete(f"/conversations/{conversation}").status_code == 200
        waiting.join()
        answered = answers[0].json()
        stored = http.get(f"/responses/{answered['id']}").json()
    assert answered["status"] == stored["status"] == "completed"
    assert answered["error"] is None and stored["error"] is None


def _live(server: Server) -> str | None:
    """The id of the response the server is running, read from its database: the client still waiting for the
    response has not been told it."""
    with sqlite3.connect(server.data_dir / "toolshed.db") as db:
        row = db.execute("SELECT id FROM responses WHERE status = 'in_progress'").fetchone()
    return row[0] if row else None
