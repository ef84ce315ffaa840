"""What sandboxes leave behind (issue 27 items 13-16), on a real server with real sandboxes: the warm pool after a
burst of deletes, loop devices after a stop, a second server on the same namespace, and a deleted thread's
sandbox."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from orchestrator.localserver import Server
from tests.conftest import logs, metric_value, run, running_server, sdk_client
from tests.run_helpers import ask
from tests.scripted_model import ScriptedModel, Turn

pytestmark = [pytest.mark.docker, pytest.mark.filterwarnings("ignore::DeprecationWarning")]


def namespace_containers(namespace: str) -> set[str]:
    out = subprocess.run(["docker", "ps", "-a", "--filter", f"label=toolshed.namespace={namespace}",
                          "--format", "{{.Names}}"], capture_output=True, text=True, check=True).stdout
    return {name.removeprefix("toolshed-") for name in out.split()}


def loop_files_under(folder: Path) -> list[str]:
    """The backing files of the attached loop devices that lie under `folder`."""
    out = subprocess.run(["losetup", "--list", "--noheadings", "--output", "BACK-FILE"],
                         capture_output=True, text=True, check=True).stdout
    return [line.strip() for line in out.splitlines() if line.strip().startswith(str(folder.resolve()))]


def eventually(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.5)


def pool_ready(server: Server) -> float:
    return metric_value(httpx.get(f"{server.base_url}/metrics").text, "toolshed_pool_ready")


def test_the_pool_refills_and_nothing_is_lost_after_a_burst_of_deletes(docker_ready: None, tmp_path: Path) -> None:
    """Item 13: a pooled start that ended while a die event was handled was never handed out, nor removed."""
    server = Server(tmp_path / "server", TOOLSHED_POOL_SIZE="2")
    server.start()
    try:
        client = sdk_client(server)
        eventually(lambda: pool_ready(server) == 2, 120, "the pool did not fill")

        def use_once(n: int) -> str:
            created = client.containers.create(name=f"burst-{n}")
            answer = logs(run(client, created.id, f"print({n} * 2)"))
            client.containers.delete(created.id)
            return answer

        with ThreadPoolExecutor(20) as workers:
            assert list(workers.map(use_once, range(20))) == [f"{n * 2}\n" for n in range(20)]
        eventually(lambda: pool_ready(server) == 2 and len(namespace_containers(server.namespace)) == 2, 30,
                   f"pool {pool_ready(server)} of 2, containers {namespace_containers(server.namespace)}")
        server.stop()
        assert namespace_containers(server.namespace) == set()
    finally:
        server.stop()
        server.remove_containers()


def test_no_loop_device_outlives_its_container_after_a_stop_and_recovery_still_works(docker_ready: None,
                                                                                    tmp_path: Path) -> None:
    """Item 14: the disks of sandboxes alive at a stop stayed mounted on the host after their containers went."""
    server = Server(tmp_path / "server", TOOLSHED_POOL_SIZE="0", TOOLSHED_SANDBOX_DISK_QUOTA="64m")
    server.start()
    try:
        client = sdk_client(server)
        kept = client.containers.create(name="kept").id
        run(client, kept, "x = 41\nopen('/mnt/data/note.txt', 'w').write('kept')")
        server.stop()
        assert kept in namespace_containers(server.namespace)  # left running, for the next start to recover

        server.start()  # the same data dir and namespace: the sandbox is recovered, memory and files
        assert logs(run(client, kept, "print(x + 1, open('/mnt/data/note.txt').read())")) == "42 kept\n"
        gone = client.containers.create(name="gone").id
        run(client, gone, "print(1)")
        client.containers.delete(gone)
        server.stop()

        containers = namespace_containers(server.namespace)
        assert containers == {kept}
        subprocess.run(["docker", "rm", "-f", *(f"toolshed-{c}" for c in containers)], check=True,
                       capture_output=True)
        eventually(lambda: not loop_files_under(server.data_dir), 15,
                   f"loop devices left: {loop_files_under(server.data_dir)}")
    finally:
        server.stop()
        server.remove_containers()


def test_a_second_server_on_the_same_namespace_leaves_the_firsts_sandboxes_alone(docker_ready: None,
                                                                                 tmp_path: Path) -> None:
    """Item 15: the second server took the first's containers for a dead run's leftovers and removed them."""
    with running_server(tmp_path / "first", TOOLSHED_POOL_SIZE="0") as first:
        client = sdk_client(first)
        container = client.containers.create(name="first's").id
        run(client, container, "x = 41")
        with running_server(tmp_path / "second", TOOLSHED_POOL_SIZE="0",
                            TOOLSHED_NAMESPACE=first.namespace) as second:
            refused = httpx.post(f"{second.base_url}/v1/containers", json={"name": "second's"}, timeout=60)
            assert refused.status_code == 503, refused.text
            assert first.namespace in refused.json()["error"]["message"]
            named = [line for line in second.log.read_text().splitlines() if first.namespace in line]
            assert len(named) == 1 and "another Toolshed server" in named[0], named
        answer = run(client, container, "print(x + 1)")
        assert logs(answer) == "42\n" and not answer.get("kernel_restarted"), answer
        assert namespace_containers(first.namespace) == {container}


def test_deleting_a_thread_removes_its_sandbox(docker_ready: None, model: ScriptedModel, tmp_path: Path) -> None:
    """Item 16: a deleted thread's sandbox kept running until it expired."""
    with running_server(tmp_path / "server", TOOLSHED_POOL_SIZE="0", TOOLSHED_MODEL_BASE_URL=model.base_url) as srv:
        client: OpenAI = sdk_client(srv)
        model.say(Turn(tool_calls=[("code_interpreter", json.dumps({"code": "print(6 * 7)"}))]), Turn(text="42."))
        assistant, thread = ask(client, "6 x 7?", tools=[{"type": "code_interpreter"}])
        done = client.beta.threads.runs.create_and_poll(thread_id=thread, assistant_id=assistant)
        assert done.status == "completed", done.last_error
        assert len(namespace_containers(srv.namespace)) == 1  # the thread's sandbox
        assert client.beta.threads.delete(thread).deleted
        eventually(lambda: not namespace_containers(srv.namespace), 10,
                   f"the thread's sandbox is still there: {namespace_containers(srv.namespace)}")
