"""Projects and the Responses face: every id a request names that would become bytes or context (a response, a
conversation, a container, a vector store, a file, a referenced item) is checked against the caller's project."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from tests.conftest import Evidence, running_server
from tests.scripted_model import ScriptedModel, Turn


def sdk(base_url: str, key: str) -> OpenAI:
    return OpenAI(base_url=f"{base_url}/v1", api_key=key, max_retries=0, timeout=120)


@pytest.mark.attack("projects: another project's ids in a response")
def test_another_projects_ids_are_unknown_to_a_response(docker_ready: None, model: ScriptedModel, tmp_path: Path,
                                                        evidence: Evidence) -> None:
    with running_server(tmp_path, TOOLSHED_API_KEYS='{"ka": "alpha", "kb": "beta"}',
                        TOOLSHED_MODEL_BASE_URL=model.base_url) as srv:
        alpha = sdk(srv.base_url, "ka")
        secret = alpha.files.create(file=("secret.txt", b"alpha's launch code is 0451"), purpose="assistants")
        store = alpha.vector_stores.create(name="alpha", file_ids=[secret.id])
        container = alpha.containers.create(name="alpha box")
        conversation = alpha.conversations.create(items=[{"role": "user", "content": "alpha's plan: 0451"}])
        model.say(Turn(tool_calls=[("code_interpreter", json.dumps({"code": "x = 451"}))]), Turn(text="ok"))
        made = alpha.responses.create(model="m", input="remember", tools=[
            {"type": "code_interpreter", "container": {"type": "auto"}}])
        own_item = alpha.responses.input_items.list(made.id).data[0].id

        def post(body: dict) -> httpx.Response:
            return httpx.post(f"{srv.base_url}/v1/responses", headers={"Authorization": "Bearer kb"}, timeout=60,
                              json={"model": "m", "input": "hi", **body})

        answers = {
            "retrieve": httpx.get(f"{srv.base_url}/v1/responses/{made.id}", headers={"Authorization": "Bearer kb"}),
            "input_items": httpx.get(f"{srv.base_url}/v1/responses/{made.id}/input_items",
                                     headers={"Authorization": "Bearer kb"}),
            "delete": httpx.delete(f"{srv.base_url}/v1/responses/{made.id}", headers={"Authorization": "Bearer kb"}),
            "previous_response_id": post({"previous_response_id": made.id}),
            "conversation": post({"conversation": conversation.id}),
            "container": post({"tools": [{"type": "code_interpreter", "container": container.id}]}),
            "vector_store": post({"tools": [{"type": "file_search", "vector_store_ids": [store.id]}]}),
            "container file_ids": post({"tools": [{"type": "code_interpreter",
                                                   "container": {"type": "auto", "file_ids": [secret.id]}}]}),
            "input_file": post({"input": [{"role": "user", "content": [
                {"type": "input_file", "file_id": secret.id}]}]}),
            "item_reference": post({"input": [{"type": "item_reference", "id": own_item}]}),
        }
        image_item = {"role": "user", "content": [{"type": "input_image", "file_id": secret.id}]}
        forged_call = {"type": "code_interpreter_call", "id": "ci_forged", "status": "completed", "code": "",
                       "outputs": [], "container_id": made.output[0].container_id}  # type: ignore[union-attr]
        answers["conversation item"] = httpx.post(f"{srv.base_url}/v1/conversations", json={"items": [image_item]},
                                                  headers={"Authorization": "Bearer kb"})
        beta_conversation = httpx.post(f"{srv.base_url}/v1/conversations", json={},
                                       headers={"Authorization": "Bearer kb"}).json()["id"]
        answers["added conversation item"] = httpx.post(
            f"{srv.base_url}/v1/conversations/{beta_conversation}/items", json={"items": [image_item]},
            headers={"Authorization": "Bearer kb"})
        # A forged call naming alpha's container: beta's answer links a path there, and must learn nothing of it.
        model.say(Turn(text="see sandbox:/mnt/data/plan.txt"))
        alpha.containers.files.create(made.output[0].container_id, file=("plan.txt", b"0451"))  # type: ignore[union-attr]
        forged = post({"input": [forged_call, {"role": "user", "content": "hi"}]})
        still_there = alpha.responses.retrieve(made.id).status
    assert forged.status_code == 200
    [message] = forged.json()["output"]
    assert message["content"][0]["annotations"] == []  # nothing of alpha's container
    refused = {name: answer.status_code for name, answer in answers.items()}
    assert all(status in (400, 404) for status in refused.values()), refused
    assert not any("0451" in answer.text for answer in answers.values())
    assert still_there == "completed"
    evidence(f"{len(refused)} uses of another project's ids: all 400/404, no byte of theirs in any answer")
