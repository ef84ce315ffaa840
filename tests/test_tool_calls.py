"""/v1/tools, /v1/tool_calls and /v1/annotations: an assistant server's tool loop against real sandboxes."""

from __future__ import annotations

import json
import secrets

import httpx
import pytest
from openai import OpenAI

from orchestrator.localserver import Server

pytestmark = pytest.mark.docker


def tool_call(server: Server, thread_id: str, code: str | None = None, *, name: str = "code_interpreter",
              arguments: str | None = None, file_ids: list[str] | None = None) -> httpx.Response:
    body = {
        "thread_id": thread_id,
        "tool_call": {"id": f"call_{secrets.token_hex(4)}", "type": "function",
                      "function": {"name": name, "arguments": arguments or json.dumps({"code": code})}},
    }
    if file_ids is not None:
        body["tool_resources"] = {"code_interpreter": {"file_ids": file_ids}}
    return httpx.post(f"{server.base_url}/v1/tool_calls", json=body, timeout=120)


def annotate(server: Server, thread_id: str, text: str) -> dict:
    response = httpx.post(f"{server.base_url}/v1/annotations", json={"thread_id": thread_id, "text": text})
    assert response.status_code == 200, response.text
    return response.json()


def new_thread() -> str:
    return f"thread_{secrets.token_hex(6)}"


def test_tools_lists_code_interpreter_as_a_function_tool(server: Server) -> None:
    tools = httpx.get(f"{server.base_url}/v1/tools").json()["data"]
    [ci] = [t for t in tools if t["function"]["name"] == "code_interpreter"]
    assert ci["type"] == "function" and ci["function"]["parameters"]["required"] == ["code"]


def test_a_thread_whose_sandbox_was_deleted_gets_a_new_one_with_its_attachments(server: Server,
                                                                               client: OpenAI) -> None:
    thread = new_thread()
    data = client.files.create(file=("input.csv", b"a\n1\n"), purpose="assistants")
    listing = "import os\nprint(sorted(os.listdir('/mnt/data')))"
    first = tool_call(server, thread, listing, file_ids=[data.id]).json()
    assert first["output"] == "['input.csv']\n"
    client.containers.delete(first["container_id"])
    again = tool_call(server, thread, listing, file_ids=[data.id]).json()
    assert again["container_id"] != first["container_id"] and again["output"] == "['input.csv']\n"


def test_a_thread_keeps_one_sandbox_with_its_files_and_state(server: Server, client: OpenAI) -> None:
    thread = new_thread()
    data = client.files.create(file=("nums.csv", b"n\n1\n2\n3\n"), purpose="assistants")
    first = tool_call(server, thread, "import pandas as pd\ndf = pd.read_csv('/mnt/data/nums.csv')\n"
                                      "print(df.n.sum())", file_ids=[data.id])
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["output"] == "6\n" and body["status"] == "completed"
    [step] = body["step_details"]["tool_calls"]
    assert step["type"] == "code_interpreter" and step["id"] == body["tool_call_id"]
    assert step["code_interpreter"]["outputs"] == [{"type": "logs", "logs": "6\n"}]

    code = ("import os, matplotlib.pyplot as plt\nos.makedirs('/mnt/data/out', exist_ok=True)\n"
            "df.describe().to_csv('/mnt/data/out/stats.csv')\n_ = plt.plot(df.n)")
    second = tool_call(server, thread, code, file_ids=[data.id]).json()
    assert second["container_id"] == body["container_id"]  # same thread, same sandbox, same variables
    assert [f["path"] for f in second["files"]] == ["/mnt/data/out/stats.csv"]
    assert "sandbox:/mnt/data/out/stats.csv" in second["output"]
    outputs = second["step_details"]["tool_calls"][0]["code_interpreter"]["outputs"]
    assert [o["type"] for o in outputs] == ["image"]
    assert client.files.content(outputs[0]["image"]["file_id"]).read()[:4] == b"\x89PNG"

    changed = tool_call(server, thread, "open('/mnt/data/nums.csv', 'a').write('4\\n')", file_ids=[data.id]).json()
    assert [f["path"] for f in changed["files"]] == ["/mnt/data/nums.csv"]
    again = tool_call(server, thread, "print(open('/mnt/data/nums.csv').read().split())", file_ids=[data.id])
    assert again.json()["output"] == "['n', '1', '2', '3', '4']\n"  # the attachment is not copied over the edit

    text = "Here are the stats: [download](sandbox:/mnt/data/out/stats.csv). Also sandbox:/mnt/data/nums.csv."
    part = annotate(server, thread, text)
    assert part["type"] == "text" and part["text"]["value"] == text
    found = {a["text"]: a for a in part["text"]["annotations"]}
    assert set(found) == {"sandbox:/mnt/data/out/stats.csv", "sandbox:/mnt/data/nums.csv"}
    for annotation in part["text"]["annotations"]:
        assert annotation["type"] == "file_path"
        assert text[annotation["start_index"]:annotation["end_index"]] == annotation["text"]
    assert found["sandbox:/mnt/data/out/stats.csv"]["file_path"]["file_id"] == second["files"][0]["file_id"]
    assert found["sandbox:/mnt/data/nums.csv"]["file_path"]["file_id"] == changed["files"][0]["file_id"]


def test_threads_never_see_each_others_files(server: Server) -> None:
    one, two = new_thread(), new_thread()
    tool_call(server, one, "open('/mnt/data/secret.txt', 'w').write('only for thread one')")
    listing = tool_call(server, two, "import os; print(sorted(os.listdir('/mnt/data')))").json()
    assert listing["output"] == "[]\n"
    assert annotate(server, two, "see sandbox:/mnt/data/secret.txt")["text"]["annotations"] == []
    assert len(annotate(server, one, "see sandbox:/mnt/data/secret.txt")["text"]["annotations"]) == 1


def test_errors_and_timeouts_are_output_for_the_model(server: Server) -> None:
    thread = new_thread()
    failed = tool_call(server, thread, "1/0").json()
    assert failed["status"] == "failed" and "ZeroDivisionError" in failed["output"]
    assert "\x1b[" not in failed["output"]
    long = tool_call(server, thread, "print('x' * 100_000)").json()
    assert len(long["output"]) < 8200 and "characters omitted" in long["output"]


def test_bad_tool_calls_get_clear_errors(server: Server) -> None:
    thread = new_thread()
    unknown = tool_call(server, thread, name="web_browser", arguments="{}")
    assert unknown.status_code == 400
    assert unknown.json()["error"]["code"] == "unknown_tool"
    assert unknown.json()["error"]["param"] == "tool_call.function.name"
    for arguments in ("print(1)", "{\"code\": 5}", "[]"):
        bad = tool_call(server, thread, arguments=arguments)
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_arguments", bad.text
    missing_file = tool_call(server, thread, "1", file_ids=["file-nope"])
    assert missing_file.status_code == 404
    no_thread = httpx.post(f"{server.base_url}/v1/tool_calls", json={"tool_call": {}})
    assert no_thread.status_code == 400
