"""A sandbox container that shares no path with the server (issue 33): runtime.py's protections, no bind mounts.

/mnt/data is a Docker volume of the engine's own (the local driver over a size-limited tmpfs), which the keeper
container mounts too (remote_host.py), and the size limit is the filesystem's: ENOSPC inside the sandbox. The run
dir is gone: the kernel's connection file lives in the tmpfs /tmp (see kernel_channel.BOOTSTRAP).
"""

from __future__ import annotations

from typing import Any

import docker
import docker.errors
import docker.types
import requests.exceptions

from orchestrator.sandbox.errors import EngineUnavailable, SandboxStartFailed
from orchestrator.sandbox.hardening import Limits
from orchestrator.sandbox.kernel_channel import KERNEL_COMMAND, deliver_connection
from orchestrator.sandbox.runtime import CONTAINER_DATA_DIR, LABEL_PREFIX, hardened_host_config


def data_volume_name(sandbox_id: str) -> str:
    return f"toolshed-data-{sandbox_id}"


def create_data_volume(api: docker.APIClient, sandbox_id: str, *, size_bytes: int, uid: int,
                       labels: dict[str, str]) -> str:
    """A tmpfs volume of `size_bytes` owned by the sandbox uid, for /mnt/data; its name."""
    name = data_volume_name(sandbox_id)
    options = f"size={size_bytes},uid={uid},gid={uid},mode=0700,nosuid,nodev"
    try:
        api.create_volume(name, driver="local", driver_opts={"type": "tmpfs", "device": "tmpfs", "o": options},
                          labels={f"{LABEL_PREFIX}{k}": v for k, v in labels.items()})
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise EngineUnavailable(f"could not create the sandbox's data volume: {exc}") from exc
    return name


def host_config(api: docker.APIClient, limits: Limits, *, oci_runtime: str, data_volume: str) -> dict[str, Any]:
    """Every protection a sandbox gets, with /mnt/data a volume and no run dir."""
    return hardened_host_config(api, limits, oci_runtime,
                                mounts=[docker.types.Mount(CONTAINER_DATA_DIR, data_volume, type="volume")])


def start_sandbox(api: docker.APIClient, sandbox_id: str, *, image: str, uid: int, limits: Limits,
                  oci_runtime: str, data_volume: str, connection: dict[str, Any],
                  labels: dict[str, str]) -> str:
    """Create and start a sandbox container whose kernel listens on its loopback with `connection`; its id."""
    try:
        created = api.create_container(
            image, KERNEL_COMMAND, name=f"toolshed-{sandbox_id}", user=f"{uid}:{uid}", working_dir=CONTAINER_DATA_DIR,
            environment={"MPLBACKEND": "module://matplotlib_inline.backend_inline"},
            labels={f"{LABEL_PREFIX}{k}": v for k, v in labels.items()} | {f"{LABEL_PREFIX}id": sandbox_id},
            host_config=host_config(api, limits, oci_runtime=oci_runtime, data_volume=data_volume))
        api.start(created["Id"])
    except docker.errors.APIError as exc:
        raise SandboxStartFailed(f"Could not start sandbox container: {exc.explanation or exc}") from exc
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise EngineUnavailable(f"Docker engine error: {exc}") from exc
    deliver_connection(api, created["Id"], connection)
    return str(created["Id"])
