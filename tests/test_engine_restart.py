"""Recovery from a restart of the Docker engine itself: every container stops, the event stream breaks, and the
server must come back by itself: no dead or orphaned containers, files intact, the next calls just work.

This restarts the real engine, so it runs last (see conftest) and needs root.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from orchestrator.localserver import Server
from tests.conftest import logs, metric_value, run, skip_unless_required

pytestmark = [pytest.mark.docker, pytest.mark.restarts_engine]
REPO = Path(__file__).resolve().parent.parent


def restart_engine() -> None:
    if subprocess.run(["systemctl", "is-active", "--quiet", "docker"], check=False,
                      capture_output=True).returncode == 0:
        subprocess.run(["systemctl", "restart", "docker"], check=True)
        return
    pid = int(subprocess.run(["pidof", "dockerd"], capture_output=True, text=True, check=True).stdout.split()[0])
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while subprocess.run(["pidof", "dockerd"], check=False, capture_output=True).returncode == 0:
        assert time.monotonic() < deadline, "dockerd did not stop"
        time.sleep(0.2)
    subprocess.run(["bash", str(REPO / "scripts" / "ensure_docker.sh")], check=True)


def namespace_states(server: Server) -> dict[str, str]:
    out = subprocess.run(["docker", "ps", "-a", "--filter", f"label=toolshed.namespace={server.namespace}",
                          "--format", "{{.Names}} {{.State}}"], capture_output=True, text=True, check=True).stdout
    return {name.removeprefix("toolshed-"): state for name, state in (line.split() for line in out.splitlines())}


def code_call(server: Server, thread_id: str, code: str) -> dict:
    return httpx.post(f"{server.base_url}/v1/tool_calls", timeout=120, json={
        "thread_id": thread_id, "tool_call": {"id": "call", "type": "function", "function": {
            "name": "code_interpreter", "arguments": json.dumps({"code": code})}}}).json()


def test_the_server_recovers_by_itself_when_the_docker_engine_restarts(docker_ready: None, tmp_path: Path) -> None:
    skip_unless_required("restarting the Docker engine needs root" if os.geteuid() != 0 else None)
    server = Server(tmp_path / "server", TOOLSHED_POOL_SIZE="1")
    server.start()
    try:
        client = OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0, timeout=120)
        container = client.containers.create(name="before").id
        assert run(client, container, "open('/mnt/data/a.txt', 'w').write('alpha'); v = 1")["status"] == "completed"
        thread = code_call(server, "t-engine", "open('/mnt/data/t.txt', 'w').write('thread file')")
        assert thread["container_id"]
        deadline = time.monotonic() + 60
        while metric_value(httpx.get(f"{server.base_url}/metrics").text, "toolshed_pool_ready") < 1:
            assert time.monotonic() < deadline, "the pool did not fill"
            time.sleep(0.25)

        busy = client.containers.create(name="mid-cell").id
        cell: dict = {}
        mid_cell = threading.Thread(target=lambda: cell.update(run(client, busy, "import time\ntime.sleep(120)")))
        mid_cell.start()
        time.sleep(2)
        restart_engine()
        # The cell the restart cut ends at once, saying its kernel died; it does not wait out its sleep.
        mid_cell.join(timeout=60)
        assert not mid_cell.is_alive(), "a cell running when the engine restarted never ended"
        assert cell["status"] == "failed" and cell["error"]["name"] == "KernelDied", cell
        assert logs(run(client, busy, "print('busy again')")).endswith("busy again\n")

        # Without any request, the server notices: dead containers go (files stay), the pool refills.
        deadline = time.monotonic() + 60
        while True:
            states = namespace_states(server)
            if states and set(states.values()) == {"running"} and container not in states:
                break
            assert time.monotonic() < deadline, f"dead or orphaned containers remain: {states}"
            time.sleep(0.5)
        assert client.containers.retrieve(container).status == "expired"

        again = run(client, container, "print(open('/mnt/data/a.txt').read(), 'v' in globals())")
        assert again["status"] == "completed"
        assert "container stopped while idle" in logs(again) and "alpha False" in logs(again)
        assert "thread file" in code_call(server, "t-engine", "print(open('/mnt/data/t.txt').read())")["output"]
        fresh = client.containers.create(name="after").id
        assert logs(run(client, fresh, "print(6 * 7)")) == "42\n"
        text = httpx.get(f"{server.base_url}/metrics").text
        assert metric_value(text, 'toolshed_sandboxes_reaped_total{reason="stopped"}') >= 2
    finally:
        server.stop()
        server.remove_containers()
