"""The OCI runtimes the security battery runs under (issue 31): gVisor's runsc and Docker's runc, each test once
under each, every runtime with a server of its own."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import docker

from tests.conftest import EXPORT_LIMIT, UPLOAD_LIMIT, Server, running_server, skip_unless_required

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

