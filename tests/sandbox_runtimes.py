"""The OCI runtimes the security battery runs under (issue 31): gVisor's runsc and Docker's runc, each test once
under each, every runtime with a server of its own."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import docker
import pytest
from openai import OpenAI

from tests.conftest import (
    EXPORT_LIMIT,
    UPLOAD_LIMIT,
    Server,
    logs,
    run,
    running_server,
    sdk_client,
    skip_unless_required,
)

RUNTIMES = ("runsc", "runc")
# The shared test server's settings (tests/conftest.py), for the servers that stand in for it.
SHARED_LIMITS = {"TOOLSHED_SANDBOX_DISK_QUOTA": "64m", "TOOLSHED_INTERRUPT_GRACE": "1",
                 "TOOLSHED_MAX_EXPORT_BYTES": str(EXPORT_LIMIT), "TOOLSHED_MAX_UPLOAD_BYTES": str(UPLOAD_LIMIT)}


def gvisor_problem() -> str | None:
    """Why this Docker engine cannot run sandboxes under gVisor, or None."""
    try:
        runtimes = docker.from_env().info().get("Runtimes") or {}
    except Exception as exc:  # noqa: BLE001 - any failure means "no engine"
        return f"no Docker engine: {exc}"
    if "runsc" not in runtimes:
        return "Docker has no runsc runtime registered (scripts/ensure_docker.sh registers it)"
    return None


@contextmanager
def runtime_server(runtime: str, data_dir: Path, **env: str) -> Iterator[Server]:
    """A server whose sandboxes run under `runtime` (TOOLSHED_SANDBOX_RUNTIME); under runsc it skips, or in CI
    fails, where gVisor is not registered."""
    if runtime == "runsc":
        skip_unless_required(gvisor_problem())
    with running_server(data_dir, TOOLSHED_SANDBOX_RUNTIME=runtime, **env) as srv:
        yield srv


def probe(client: OpenAI, container: str, code: str) -> object:
    """Run code that prints one JSON value and return it."""
    execution = run(client, container, code)
    assert execution["status"] == "completed", execution
    return json.loads(logs(execution))


def battery_fixtures(name: str) -> tuple[Any, Any, Any]:
    """(`sandbox_runtime`, `server`, `client`) for a module of the battery, to bind at its top level: they stand
    in for the shared fixtures of tests/conftest.py in that module only, one server per runtime."""

    @pytest.fixture(scope="module", params=RUNTIMES)
    def sandbox_runtime(request: pytest.FixtureRequest) -> str:
        return str(request.param)

    @pytest.fixture(scope="module")
    def server(sandbox_runtime: str, docker_ready: None,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
        with runtime_server(sandbox_runtime, tmp_path_factory.mktemp(f"{name}-{sandbox_runtime}"),
                            **SHARED_LIMITS) as srv:
            yield srv

    @pytest.fixture(scope="module")
    def client(server: Server) -> OpenAI:
        return sdk_client(server)

    return sandbox_runtime, server, client
