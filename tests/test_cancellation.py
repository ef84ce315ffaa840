"""Cancellation is addressed to work, not to a sandbox: a caller who leaves stops only its own call.

A caller who gives up while its call is still queued behind another on the same sandbox must not interrupt the
call ahead of it, and its own call must never run; a caller who leaves while its cell runs stops that cell.
"""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest
from openai import OpenAI

from tests.conftest import Server, logs, run

pytestmark = pytest.mark.docker


def tool_call(server: Server, thread_id: str, code: str, timeout: float) -> httpx.Response:
    return httpx.post(f"{server.base_url}/v1/tool_calls", timeout=timeout, json={
        "thread_id": thread_id, "tool_call": {"id": "call_1", "type": "function", "function": {
            "name": "code_interpreter", "arguments": json.dumps({"code": code})}}})


def behind_a_long_call(start_long: object, give_up: object) -> dict:
    """Runs the long call in a thread, then a call that gives up after 1 s while queued behind it."""
    ahead: dict = {}
    thread = threading.Thread(target=lambda: ahead.update(start_long()))  # type: ignore[operator]
    thread.start()
    time.sleep(1.0)  # the long call holds the sandbox by now
    with pytest.raises(httpx.ReadTimeout):
        give_up()  # type: ignore[operator]
    thread.join()
    return ahead


def test_a_queued_execute_whose_caller_left_never_runs(client: OpenAI, container: str, server: Server) -> None:
    ahead = behind_a_long_call(
        lambda: run(client, container, "import time\ntime.sleep(4)\nprint('ahead done')"),
        lambda: httpx.post(f"{server.base_url}/v1/containers/{container}/execute", timeout=1,
                           json={"code": "open('/mnt/data/b.txt', 'w').write('b')"}))
    assert ahead["status"] == "completed"
    assert logs(ahead) == "ahead done\n"
    time.sleep(1.0)
    check = run(client, container, "import os\nprint(os.path.exists('/mnt/data/b.txt'))")
    assert logs(check) == "False\n"


def test_a_queued_tool_call_whose_caller_left_never_runs(server: Server) -> None:
    thread_id = f"queued-{time.monotonic_ns()}"
    assert tool_call(server, thread_id, "x = 1", 60).status_code == 200  # the thread's sandbox exists
    ahead = behind_a_long_call(
        lambda: tool_call(server, thread_id, "import time\ntime.sleep(4)\nprint('ahead done')", 60).json(),
        lambda: tool_call(server, thread_id, "open('/mnt/data/b.txt', 'w').write('b')", 1))
    assert ahead["status"] == "completed"
    assert ahead["output"] == "ahead done\n"
    time.sleep(1.0)
    check = tool_call(server, thread_id, "import os\nprint(os.path.exists('/mnt/data/b.txt'))", 60).json()
    assert check["output"] == "False\n"


def test_a_caller_who_leaves_mid_cell_stops_only_that_cell(client: OpenAI, container: str, server: Server) -> None:
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{server.base_url}/v1/containers/{container}/execute", timeout=1,
                   json={"code": "import time\ntime.sleep(30)\nopen('/mnt/data/late.txt', 'w').write('x')"})
    started = time.monotonic()
    after = run(client, container, "import os\nprint(os.path.exists('/mnt/data/late.txt'))")
    assert logs(after) == "False\n"
    assert time.monotonic() - started < 10  # not stuck behind the abandoned 30 s cell
