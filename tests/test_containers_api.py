"""The Containers API and execution over HTTP, driven by the official openai SDK against real sandboxes."""

from __future__ import annotations

import json
import threading
import time

import httpx
import openai
import pytest
from openai import OpenAI

from tests.conftest import Server, logs, metric_value, run, sse_events

pytestmark = pytest.mark.docker


def test_sdk_create_retrieve_list_delete(client: OpenAI) -> None:
    created = client.containers.create(name="lifecycle", memory_limit="1g")
    assert created.id.startswith("cntr_")
    assert (created.object, created.status, created.name, created.memory_limit) == ("container", "running",
                                                                                     "lifecycle", "1g")
    assert created.network_policy.type == "disabled"
    assert client.containers.retrieve(created.id).id == created.id
    assert created.id in [c.id for c in client.containers.list(limit=100)]
    client.containers.delete(created.id)
    with pytest.raises(openai.NotFoundError):
        client.containers.retrieve(created.id)
    assert created.id not in [c.id for c in client.containers.list(limit=100)]


def test_list_pages_with_cursor(client: OpenAI) -> None:
    ids = [client.containers.create(name="page").id for _ in range(3)]
    try:
        first = client.containers.list(limit=2, order="asc", name="page")
        assert [c.id for c in first.data] == ids[:2] and first.has_more is True
        walked = [c.id for c in client.containers.list(limit=2, order="asc", name="page")]
        assert walked == ids
        newest = client.containers.list(limit=1, order="desc", name="page")
        assert [c.id for c in newest.data] == [ids[-1]]
    finally:
        for container_id in ids:
            client.containers.delete(container_id)


def test_state_persists_within_a_container_and_never_leaks(client: OpenAI, container: str) -> None:
    other = client.containers.create(name="other").id
    try:
        assert run(client, container, "x = 21\nprint(x * 2)")["outputs"] == [{"type": "logs", "logs": "42\n"}]
        assert logs(run(client, container, "x + 1")) == "22\n"
        run(client, container, "open('/mnt/data/secret.txt', 'w').write('mine')")
        leaked = run(client, other, "import os\nprint('x' in dir(), os.listdir('/mnt/data'))")
        assert logs(leaked) == "False []\n"
    finally:
        client.containers.delete(other)


def test_execution_object_shape_and_output_order(client: OpenAI, container: str) -> None:
    code = "import sys\nprint('out')\nprint('err', file=sys.stderr)\n7 * 6"
    execution = run(client, container, code)
    assert execution["object"] == "container.execution" and execution["id"].startswith("exec_")
    assert execution["container_id"] == container
    assert (execution["status"], execution["error"]) == ("completed", None)
    assert execution["outputs"] == [{"type": "logs", "logs": "out\nerr\n42\n"}]
    assert isinstance(execution["duration_ms"], int)


def test_user_error_is_data_with_traceback(client: OpenAI, container: str) -> None:
    execution = run(client, container, "print('before')\n1/0")
    assert execution["status"] == "failed"
    assert execution["error"]["name"] == "ZeroDivisionError"
    assert execution["error"]["value"] == "division by zero"
    text = logs(execution)
    assert text.startswith("before\n") and "ZeroDivisionError" in text and "\x1b[" not in text


def test_plots_become_image_outputs_backed_by_files(client: OpenAI, container: str) -> None:
    execution = run(client, container, "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.show()")
    images = [o for o in execution["outputs"] if o["type"] == "image"]
    assert len(images) == 1
    content = client.files.content(images[0]["image"]["file_id"]).read()
    assert content[:8] == b"\x89PNG\r\n\x1a\n"


def test_streaming_sends_outputs_then_completed_then_done(server: Server, container: str) -> None:
    # One write per line: print() writes the value and the newline separately, and ipykernel's
    # flush timer may send them as two stream messages.
    code = ("import sys, time\nfor i in range(3):\n    sys.stdout.write(f'{i}\\n')\n"
            "    sys.stdout.flush()\n    time.sleep(0.2)")
    with httpx.stream("POST", f"{server.base_url}/v1/containers/{container}/execute",
                      json={"code": code, "stream": True}, timeout=60) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response)
    kinds = [kind for kind, _ in events]
    assert kinds == ["execution.output"] * 3 + ["execution.completed", None]
    assert [payload["logs"] for _, payload in events[:3]] == ["0\n", "1\n", "2\n"]
    completed = events[3][1]
    assert completed["status"] == "completed" and completed["outputs"] == [{"type": "logs", "logs": "0\n1\n2\n"}]
    assert events[4][1] == "[DONE]"


def test_concurrent_executions_on_one_container_are_serialized(client: OpenAI, container: str) -> None:
    run(client, container, "events = []")
    cell = "import time\nevents.append('start-{0}')\ntime.sleep(0.5)\nevents.append('end-{0}')"
    threads = [threading.Thread(target=run, args=(client, container, cell.format(n))) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    events = json.loads(logs(run(client, container, "import json; print(json.dumps(events))")))
    assert len(events) == 6
    for i in range(0, 6, 2):
        assert events[i].replace("start", "end") == events[i + 1]


def test_interrupt_endpoint_stops_a_running_cell(client: OpenAI, container: str) -> None:
    result: dict = {}
    worker = threading.Thread(target=lambda: result.update(run(client, container, "import time\ntime.sleep(30)")))
    worker.start()
    time.sleep(1.0)
    client.post(f"/containers/{container}/interrupt", cast_to=object)
    worker.join(timeout=10)
    assert result["status"] == "interrupted" and result["error"]["name"] == "KeyboardInterrupt"
    assert logs(run(client, container, "print('alive')")) == "alive\n"


def test_restart_endpoint_resets_memory_but_keeps_files(client: OpenAI, container: str) -> None:
    run(client, container, "kept = 1\nopen('/mnt/data/f.txt', 'w').write('still here')")
    client.post(f"/containers/{container}/restart", cast_to=object)
    assert logs(run(client, container, "print('kept' in dir(), open('/mnt/data/f.txt').read())")) == \
        "False still here\n"


def test_unknown_container_is_404_with_openai_error(server: Server) -> None:
    for method, path in [("GET", "/v1/containers/cntr_nope"), ("DELETE", "/v1/containers/cntr_nope"),
                         ("POST", "/v1/containers/cntr_nope/execute")]:
        response = httpx.request(method, server.base_url + path, json={"code": "1"})
        assert response.status_code == 404
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"} and "cntr_nope" in error["message"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ('{"name": ', None),
        ('{"memory_limit": "1g"}', "name"),
        ('{"name": "x", "memory_limit": "2g"}', "memory_limit"),
        ('{"name": "x", "network_policy": {"type": "allowlist", "allowed_domains": ["pypi.org"]}}', "network_policy"),
    ],
)
def test_bad_create_requests_are_400(server: Server, body: str, param: str | None) -> None:
    response = httpx.post(f"{server.base_url}/v1/containers", content=body,
                          headers={"content-type": "application/json"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param and error["message"]


@pytest.mark.parametrize("body", ['{"code": 5}', '{"code": "1", "timeout": -1}', '{"code": "1", "timeout": 1e9}',
                                  '{}', 'not json'])
def test_bad_execute_requests_are_400(server: Server, container: str, body: str) -> None:
    response = httpx.post(f"{server.base_url}/v1/containers/{container}/execute", content=body,
                          headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_health_reports_docker(server: Server) -> None:
    health = httpx.get(f"{server.base_url}/health").json()
    assert health["status"] == "ok" and health["engine"]["docker"] is True


def test_file_ids_are_placed_in_mnt_data_before_the_first_execution(client: OpenAI) -> None:
    uploaded = client.files.create(file=("data.csv", b"a,b\n1,2\n3,4\n"), purpose="assistants")
    created = client.containers.create(name="with-files", file_ids=[uploaded.id])
    try:
        code = "import pandas as pd\nprint(pd.read_csv('/mnt/data/data.csv')['b'].sum())"
        assert logs(run(client, created.id, code)) == "6\n"
    finally:
        client.containers.delete(created.id)


def test_unknown_file_id_is_404_and_creates_nothing(client: OpenAI) -> None:
    before = [c.id for c in client.containers.list(limit=100)]
    with pytest.raises(openai.NotFoundError):
        client.containers.create(name="missing-file", file_ids=["file-doesnotexist"])
    assert [c.id for c in client.containers.list(limit=100)] == before


def test_a_client_that_disconnects_interrupts_its_cell(server: Server, client: OpenAI, container: str) -> None:
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{server.base_url}/v1/containers/{container}/execute",
                   json={"code": "import time\nfor _ in range(300): time.sleep(0.1)"}, timeout=1.5)
    started = time.monotonic()
    execution = run(client, container, "print('next')")
    # Without the interrupt, this call would wait ~30 s behind the abandoned cell.
    assert logs(execution) == "next\n" and time.monotonic() - started < 8


def test_a_tool_call_whose_client_disconnects_is_interrupted(server: Server) -> None:
    def call(code: str, timeout: float) -> httpx.Response:
        return httpx.post(f"{server.base_url}/v1/tool_calls", timeout=timeout, json={
            "thread_id": "thread_disconnect", "tool_call": {"id": "c", "type": "function", "function": {
                "name": "code_interpreter", "arguments": json.dumps({"code": code})}}})

    call("1", 60)  # create the thread's sandbox
    with pytest.raises(httpx.ReadTimeout):
        call("import time\nfor _ in range(300): time.sleep(0.1)", 1.5)
    started = time.monotonic()
    assert call("print('next')", 60).json()["output"] == "next\n" and time.monotonic() - started < 8


def test_metrics_count_executions_and_report_sandboxes(server: Server, client: OpenAI, container: str) -> None:
    value = metric_value
    before = httpx.get(f"{server.base_url}/metrics").text
    run(client, container, "open('/mnt/data/m.txt', 'w').write('x')")
    run(client, container, "1/0")
    after = httpx.get(f"{server.base_url}/metrics")
    assert after.headers["content-type"].startswith("text/plain")
    text = after.text
    assert value(text, 'toolshed_executions_total{status="completed"}') == \
        value(before, 'toolshed_executions_total{status="completed"}') + 1
    assert value(text, 'toolshed_executions_total{status="failed"}') == \
        value(before, 'toolshed_executions_total{status="failed"}') + 1
    assert value(text, "toolshed_artifacts_exported_total") >= value(before, "toolshed_artifacts_exported_total") + 1
    assert value(text, 'toolshed_sandboxes{status="running"}') >= 1
    assert "toolshed_execution_seconds_bucket" in text and "toolshed_sandboxes_reaped_total" in text
