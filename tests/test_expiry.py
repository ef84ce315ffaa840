"""Idle sandboxes expire like OpenAI's containers, but keep their files: the next call rehydrates them."""

from __future__ import annotations

import subprocess
import time

import pytest
from openai import OpenAI

from orchestrator.localserver import Server
from tests.conftest import logs, run

pytestmark = pytest.mark.docker


def container_exists(sandbox_id: str) -> bool:
    out = subprocess.run(["docker", "ps", "-aq", "--filter", f"name=toolshed-{sandbox_id}"], capture_output=True,
                         text=True, check=True).stdout
    return bool(out.strip())


def test_expired_sandbox_keeps_files_across_a_restart_and_rehydrates(docker_ready: None,
                                                                     tmp_path) -> None:  # noqa: ANN001
    server = Server(tmp_path / "server", TOOLSHED_REAP_INTERVAL="1")
    server.start()
    try:
        client = OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0, timeout=120)
        created = client.containers.create(name="expiring", expires_after={"anchor": "last_active_at", "minutes": 1})
        run(client, created.id, "x = 41\nopen('/mnt/data/keep.txt', 'w').write('kept')")
        deadline = time.monotonic() + 90
        while client.containers.retrieve(created.id).status != "expired":
            assert time.monotonic() < deadline, "the sandbox never expired"
            time.sleep(1)
        assert not container_exists(created.id)  # container and kernel reclaimed

        server.stop()
        server.start()  # an expired sandbox survives a server restart too
        assert client.containers.retrieve(created.id).status == "expired"

        started = time.monotonic()
        execution = run(client, created.id, "print(open('/mnt/data/keep.txt').read())\nprint('x' in dir())")
        rehydrate_s = time.monotonic() - started
        text = logs(execution)
        assert "idle for 1 minutes and was reclaimed" in text and text.endswith("kept\nFalse\n")
        assert execution["kernel_restarted"] is True and rehydrate_s < 15
        assert client.containers.retrieve(created.id).status == "running" and container_exists(created.id)
        assert [f.path for f in client.containers.files.list(container_id=created.id)] == ["/mnt/data/keep.txt"]
    finally:
        server.stop()
        server.remove_containers()
