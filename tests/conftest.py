"""Shared fixtures. The docker tier runs a real `toolshed serve` process and drives it with the openai SDK.

Outside CI a missing Docker engine or sandbox image skips the docker tier; with CI=true it fails instead.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import pytest
from openai import OpenAI

from orchestrator.sandbox.image import default_tag, image_present

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _docker_problem() -> str | None:
    try:
        docker.from_env().ping()
    except Exception as exc:  # noqa: BLE001 - any failure means "no engine"
        return f"no Docker engine: {exc}"
    if not image_present(default_tag()):
        return f"sandbox image {default_tag()} is missing (run `make image`)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A `toolshed serve` subprocess on loopback, with its own data dir and container namespace."""

    def __init__(self, data_dir: Path, **env: str) -> None:
        self.port = _free_port()
        self.namespace = f"test-{secrets.token_hex(4)}"
        self.data_dir = data_dir
        self.env = {**os.environ, "TOOLSHED_DATA_DIR": str(data_dir), "TOOLSHED_NAMESPACE": self.namespace,
                    "TOOLSHED_PORT": str(self.port), "TOOLSHED_HOST": "127.0.0.1", **env}
        self.process: subprocess.Popen[bytes] | None = None
        self.log = data_dir / "server.log"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "orchestrator.cli", "serve", "--no-build"],
                env=self.env, stdout=log, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base_url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError(f"server did not start; log:\n{self.log.read_text()}")

    def stop(self, kill: bool = False) -> None:
        if self.process is not None:
            (self.process.kill if kill else self.process.terminate)()
            self.process.wait(timeout=30)
            self.process = None

    def remove_containers(self) -> None:
        client = docker.from_env()
        for container in client.containers.list(all=True, filters={"label": f"toolshed.namespace={self.namespace}"}):
            container.remove(force=True)
        sandboxes = self.data_dir / "sandboxes"
        if sandboxes.exists():
            for disk in sandboxes.glob("*/disk"):
                subprocess.run(["umount", "-l", str(disk)], capture_output=True)


@pytest.fixture(scope="session")
def docker_ready() -> None:
    problem = _docker_problem()
    if problem is None:
        return
    if IN_CI:
        pytest.fail(f"CI must run the docker tier: {problem}")
    pytest.skip(problem)


@pytest.fixture(scope="session")
def server(docker_ready: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("server"), TOOLSHED_SANDBOX_DISK_QUOTA="64m",
                 TOOLSHED_INTERRUPT_GRACE="1")
    srv.start()
    yield srv
    srv.stop()
    srv.remove_containers()


@pytest.fixture(scope="session")
def client(server: Server) -> OpenAI:
    return OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0, timeout=120)


@pytest.fixture
def container(client: OpenAI) -> Iterator[str]:
    created = client.containers.create(name="test")
    yield created.id
    try:
        client.containers.delete(created.id)
    except Exception:  # noqa: BLE001 - the test may have deleted it
        pass


def run(client: OpenAI, container_id: str, code: str, **extra: object) -> dict:
    """POST /containers/{id}/execute and return the execution object."""
    return client.post(f"/containers/{container_id}/execute", body={"code": code, **extra}, cast_to=object)


def logs(execution: dict) -> str:
    return "".join(o["logs"] for o in execution["outputs"] if o["type"] == "logs")
