"""The warm pool: new containers and threads take a started sandbox; the pool refills; kill -9 leaves no orphans."""

from __future__ import annotations

import json
import subprocess
import time

import httpx
import pytest
from openai import OpenAI

from orchestrator.localserver import Server
from tests.conftest import logs, metric_value, run

pytestmark = pytest.mark.docker


def metric(server: Server, name: str) -> float:
    return metric_value(httpx.get(f"{server.base_url}/metrics").text, name)


def wait_for_pool(server: Server, ready: int, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while metric(server, "toolshed_pool_ready") < ready:
        assert time.monotonic() < deadline, "the pool did not fill"
        time.sleep(0.25)


def namespace_containers(server: Server) -> set[str]:
    out = subprocess.run(["docker", "ps", "-a", "--filter",
                          f"label=toolshed.namespace={server.namespace}", "--format", "{{.Names}}"],
                         capture_output=True, text=True, check=True).stdout
    return {name.removeprefix("toolshed-") for name in out.split()}


def test_pool_hit_refill_and_kill_recovery(docker_ready: None, tmp_path) -> None:  # noqa: ANN001
    server = Server(tmp_path / "server", TOOLSHED_POOL_SIZE="2")
    server.start()
    try:
        client = OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0, timeout=120)
        wait_for_pool(server, 2)
        started = time.monotonic()
        created = client.containers.create(name="from-pool")
        first = run(client, created.id, "import numpy as np\nprint(int(np.arange(4).sum()))")
        elapsed = time.monotonic() - started
        assert logs(first) == "6\n" and elapsed < 2.0, elapsed  # a cold start is ~0.6 s before any import
        assert metric(server, 'toolshed_pool_takes_total{result="hit"}') == 1
        # The warm-up left nothing in the user's namespace.
        assert logs(run(client, created.id, "print([n for n in dir() if 'toolshed' in n])")) == "[]\n"
        # TOOLSHED_POOL_PRELOAD's default: numpy and pandas waited imported; matplotlib (~24 MiB) did not.
        preloaded = run(client, created.id, "import sys\n"
                        "print(sorted(m for m in ('numpy', 'pandas', 'matplotlib') if m in sys.modules))")
        assert logs(preloaded) == "['numpy', 'pandas']\n"

        thread = httpx.post(f"{server.base_url}/v1/tool_calls", timeout=120, json={
            "thread_id": "t-pool", "tool_call": {"id": "c", "type": "function", "function": {
                "name": "code_interpreter", "arguments": json.dumps({"code": "print('thread')"})}}}).json()
        assert thread["output"] == "thread\n"
        assert metric(server, 'toolshed_pool_takes_total{result="hit"}') == 2
        wait_for_pool(server, 2)  # refilled in the background

        assigned = {created.id, thread["container_id"]}
        waiting = namespace_containers(server) - assigned
        assert len(waiting) == 2  # two handed out, two waiting
        server.stop(kill=True)
        server.start()
        deadline = time.monotonic() + 10
        while namespace_containers(server) & waiting:
            assert time.monotonic() < deadline, "orphaned pool containers survived the restart"
            time.sleep(0.5)
        # The unassigned pool members of the killed run are gone; the handed-out ones were adopted.
        assert assigned <= namespace_containers(server)
        assert {c.id for c in client.containers.list()} == assigned
        assert logs(run(client, created.id, "print(np.arange(3).sum())")) == "3\n"  # state survived
    finally:
        server.stop()
        server.remove_containers()
