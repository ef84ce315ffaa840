"""Where sandboxes live: hardened Docker containers. The only module that imports `docker`.

Every container gets the same protections, whatever the caller asks for: no network, a non-root uid, a read-only
root filesystem, no capabilities, no privilege escalation, a private IPC namespace, masked host paths, and pid,
memory and CPU limits; and, where the engine has gVisor registered, a user-space kernel (the OCI runtime `runsc`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import docker
import docker.errors
import requests.exceptions

from orchestrator.sandbox.errors import EngineUnavailable, SandboxNotFound, SandboxStartFailed
from orchestrator.sandbox.hardening import GVISOR_OWN_TASKS, GVISOR_TASKS_PER_PROCESS, MASKED_PATHS, Limits

LABEL_PREFIX = "toolshed."
CONTAINER_RUN_DIR = "/run/toolshed"
CONTAINER_DATA_DIR = "/mnt/data"
KERNEL_COMMAND = ["toolshed-kernel", f"{CONTAINER_RUN_DIR}/kernel.json"]
@dataclass(frozen=True)
class ContainerState:
    """What Docker says about a sandbox's container."""

    running: bool
    exit_code: int | None
    oom_killed: bool


_PROBE_LIMITS = Limits(512 << 20, 1.0, 256, "16m")


class Runtime(Protocol):
    """The seam between the manager and the container engine."""

    @property
    def namespace(self) -> str: ...
    def create(self, sandbox_id: str, *, limits: Limits, run_dir: Path, data_dir: Path,
               labels: dict[str, str]) -> None: ...
    def state(self, sandbox_id: str) -> ContainerState: ...
    def restart(self, sandbox_id: str) -> None: ...
    def remove(self, sandbox_id: str) -> None: ...
    def list_labels(self) -> list[dict[str, str]]: ...
    def ping(self) -> bool: ...
    def stopped_containers(self) -> StopStream: ...


class StopStream(Protocol):
    """Blocking iterator of the sandbox ids whose containers stop; ends when the engine goes away or on close(),
    which may be called from any thread."""

    def __iter__(self) -> Iterator[str]: ...
    def close(self) -> None: ...


def engine_error(exc: Exception, sandbox_id: str | None = None) -> Exception:
    """Maps docker-py's exceptions to the engine's tree, in one place."""
    if isinstance(exc, docker.errors.NotFound) and sandbox_id is not None:
        return SandboxNotFound(sandbox_id)
    if isinstance(exc, requests.exceptions.ConnectionError):
        return EngineUnavailable(f"The Docker engine is not answering (it may be restarting); retry shortly. ({exc})")
    if isinstance(exc, requests.exceptions.RequestException):  # a loaded engine: a force-remove took over a minute
        return EngineUnavailable(f"The Docker engine did not answer in time; retry shortly. ({exc})")
    if isinstance(exc, docker.errors.DockerException):
        return EngineUnavailable(f"Docker engine error: {exc}")
    return exc


def hardened_host_config(api: docker.APIClient, limits: Limits, oci_runtime: str, **storage: Any) -> dict:
    """Every protection a sandbox container gets under `oci_runtime`; `storage` is where its files live (`binds`:
    host folders, or `mounts`: a volume on an engine that shares no path with the server)."""
    gvisor = oci_runtime != "runc"
    host_config: dict[str, Any] = api.create_host_config(
        init=True,  # tini reaps orphans and exits with the kernel, so a dead kernel is a dead container
        network_mode="none",
        ipc_mode="private",
        read_only=True,
        tmpfs={"/tmp": f"rw,nosuid,nodev,size={limits.tmp_size},mode=1777"},
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        pids_limit=limits.pids * GVISOR_TASKS_PER_PROCESS + GVISOR_OWN_TASKS if gvisor else limits.pids,
        mem_limit=limits.memory_bytes,
        memswap_limit=limits.memory_bytes,
        nano_cpus=int(limits.cpus * 1e9),
        # Under runc, RLIMIT_NPROC would count every process of the uid on the host: gVisor only.
        ulimits=[docker.types.Ulimit(name="nofile", soft=4096, hard=4096)] + (
            [docker.types.Ulimit(name="nproc", soft=limits.pids, hard=limits.pids)] if gvisor else []),
        runtime=oci_runtime,
        **storage,
    )
    # Not in docker-py's helper; the engine replaces its default list with this one.
    host_config["MaskedPaths"] = MASKED_PATHS
    return host_config


class DockerRuntime:
    """Creates, inspects, restarts and removes sandbox containers through the Docker API."""

    def __init__(self, client: docker.DockerClient, *, image: str, namespace: str, uid: int,
                 oci_runtime: str = "runc") -> None:
        self._client = client
        self._image = image
        self._namespace = namespace
        self._uid = uid
        self._oci_runtime = oci_runtime

    @classmethod
    def from_env(cls, *, image: str, namespace: str, uid: int) -> DockerRuntime:
        try:
            client = docker.from_env(timeout=60)
            client.ping()
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise EngineUnavailable(f"Docker engine is not reachable: {exc}") from exc
        return cls(client, image=image, namespace=namespace, uid=uid)

    def using(self, oci_runtime: str) -> DockerRuntime:
        """The same engine connection; new containers start under `oci_runtime` (a container keeps its own)."""
        return DockerRuntime(self._client, image=self._image, namespace=self._namespace, uid=self._uid,
                             oci_runtime=oci_runtime)

    @property
    def gvisor(self) -> bool:
        """Whether containers run under gVisor (runsc, under whatever name Docker's daemon.json gives it)."""
        return self._oci_runtime != "runc"

    def registered_runtimes(self) -> list[str]:
        """The OCI runtimes the engine knows (daemon.json `runtimes`, plus its built-in runc)."""
        try:
            return sorted(self._client.info().get("Runtimes") or {})
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise engine_error(exc) from exc

    def probe(self, run_dir: Path, data_dir: Path, command: list[str], timeout: float = 60.0) -> tuple[int, str]:
        """Run `command` once in a throwaway container hardened like a sandbox, with these folders as its run dir
        and /mnt/data; its exit code and output (-1 if it could not be started or did not end in time)."""
        api, created = self._client.api, {}
        try:
            created = api.create_container(
                self._image, command, user=f"{self._uid}:{self._uid}", labels={f"{LABEL_PREFIX}probe": "true"},
                host_config=self._host_config(_PROBE_LIMITS, run_dir, data_dir))
            api.start(created["Id"])
            code = int(api.wait(created["Id"], timeout=timeout)["StatusCode"])
            return code, api.logs(created["Id"]).decode(errors="replace")
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            return -1, f"the probe container failed: {getattr(exc, 'explanation', None) or exc}"
        finally:
            with contextlib.suppress(docker.errors.DockerException, requests.exceptions.ConnectionError):
                if created:
                    api.remove_container(created["Id"], force=True)

    @property
    def namespace(self) -> str:
        """The label value that marks this server's containers among every container of the engine."""
        return self._namespace

    @staticmethod
    def container_name(sandbox_id: str) -> str:
        return f"toolshed-{sandbox_id}"

    def ping(self) -> bool:
        try:
            return bool(self._client.ping())
        except (docker.errors.DockerException, requests.exceptions.RequestException):
            return False

    def image_exists(self) -> bool:
        try:
            self._client.images.get(self._image)
            return True
        except docker.errors.ImageNotFound:
            return False
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise engine_error(exc) from exc

    def create(self, sandbox_id: str, *, limits: Limits, run_dir: Path, data_dir: Path,
               labels: dict[str, str]) -> None:
        """Create and start the container; its kernel starts with it (the entrypoint *is* the kernel)."""
        all_labels = {f"{LABEL_PREFIX}{k}": v for k, v in labels.items()}
        all_labels |= {f"{LABEL_PREFIX}id": sandbox_id, f"{LABEL_PREFIX}namespace": self._namespace,
                       f"{LABEL_PREFIX}runtime": self._oci_runtime}
        try:
            created = self._client.api.create_container(
                self._image,
                KERNEL_COMMAND,
                name=self.container_name(sandbox_id),
                user=f"{self._uid}:{self._uid}",
                working_dir=CONTAINER_DATA_DIR,
                environment={"MPLBACKEND": "module://matplotlib_inline.backend_inline"},
                labels=all_labels,
                host_config=self._host_config(limits, run_dir, data_dir),
            )
            self._client.api.start(created["Id"])
        except docker.errors.ImageNotFound as exc:
            raise EngineUnavailable(f"Sandbox image {self._image} is missing; run `toolshed image build`.") from exc
        except docker.errors.APIError as exc:
            raise SandboxStartFailed(f"Could not start sandbox container: {exc.explanation or exc}") from exc
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise engine_error(exc) from exc

    def _host_config(self, limits: Limits, run_dir: Path, data_dir: Path) -> dict:
        return hardened_host_config(self._client.api, limits, self._oci_runtime, binds={
            str(run_dir): {"bind": CONTAINER_RUN_DIR, "mode": "rw"},
            str(data_dir): {"bind": CONTAINER_DATA_DIR, "mode": "rw"},
        })

    def _container(self, sandbox_id: str):  # noqa: ANN202 - docker-py's Container is untyped
        try:
            return self._client.containers.get(self.container_name(sandbox_id))
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise engine_error(exc, sandbox_id) from exc

    def state(self, sandbox_id: str) -> ContainerState:
        info = self._container(sandbox_id).attrs["State"]
        exit_code = None if info.get("Running") else info.get("ExitCode")
        return ContainerState(bool(info.get("Running")), exit_code, bool(info.get("OOMKilled")))

    def restart(self, sandbox_id: str) -> None:
        container = self._container(sandbox_id)
        try:
            # timeout=0: the kernel is already considered lost, so SIGKILL at once.
            container.restart(timeout=0)
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise engine_error(exc, sandbox_id) from exc

    def remove(self, sandbox_id: str) -> None:
        try:
            self._container(sandbox_id).remove(force=True, v=True)
        except SandboxNotFound:
            return
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            if isinstance(exc, docker.errors.NotFound):
                return
            if isinstance(exc, docker.errors.APIError) and exc.status_code == 409:
                return  # "removal already in progress": somebody else is removing it
            raise engine_error(exc, sandbox_id) from exc

    def stopped_containers(self) -> StopStream:
        try:
            events = self._client.events(decode=True, filters={
                "type": "container", "event": "die", "label": f"{LABEL_PREFIX}namespace={self._namespace}"})
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise engine_error(exc) from exc
        return _DieEvents(events)

    def list_labels(self) -> list[dict[str, str]]:
        """Labels (prefix stripped) of every container of this namespace, running or not."""
        try:
            # sparse: the list endpoint's own answer (labels included), not one inspect per container, which
            # fails when a container goes away in between.
            containers = self._client.containers.list(
                all=True, sparse=True, filters={"label": f"{LABEL_PREFIX}namespace={self._namespace}"}
            )
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise engine_error(exc) from exc
        return [
            {k.removeprefix(LABEL_PREFIX): v for k, v in (c.attrs.get("Labels") or {}).items()
             if k.startswith(LABEL_PREFIX)}
            for c in containers
        ]


class _DieEvents:
    def __init__(self, events) -> None:  # noqa: ANN001 - docker-py's CancellableStream is untyped
        self._events = events

    def __iter__(self) -> Iterator[str]:
        try:
            for event in self._events:
                sandbox_id = event.get("Actor", {}).get("Attributes", {}).get(f"{LABEL_PREFIX}id")
                if sandbox_id:
                    yield sandbox_id
        except (docker.errors.DockerException, requests.exceptions.RequestException, OSError):
            return  # the engine went away: the stream simply ends

    def close(self) -> None:
        try:
            self._events.close()
        except (docker.errors.DockerException, OSError):
            pass
