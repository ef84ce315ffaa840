"""The engine's container verbs (host.HostRuntime) for kernel pods (issue 33): a sandbox's "container" is its
kernel, which the supervisor (kernel_supervisor.py) starts and stops inside a pod that stays."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Protocol

from orchestrator.sandbox.errors import EngineUnavailable, SandboxNotFound
from orchestrator.sandbox.kubernetes.backend import KubernetesBackend
from orchestrator.sandbox.kubernetes.manifests import CONTAINER_NAME, SUPERVISOR_SOURCE
from orchestrator.sandbox.runtime import ContainerState

log = logging.getLogger("toolshed.sandbox")
SUPERVISOR = ["python3", "-I", "-c", SUPERVISOR_SOURCE]


class PodExecs(Protocol):
    """What the runtime needs of its host (host.KubernetesHost)."""

    @property
    def backend(self) -> KubernetesBackend: ...
    @property
    def stopped(self) -> set[str]: ...
    def run(self, sandbox_id: str, container: str, command: list[str], *, in_argv: int = 0) -> bytes: ...


class PodRuntime:
    """The engine's container verbs for kernel pods: "running" is the kernel's state, not the pod's."""

    def __init__(self, host: PodExecs, poll_interval: float) -> None:
        self._host, self._poll_interval = host, poll_interval
        self._closed = threading.Event()

    @property
    def namespace(self) -> str:
        return self._host.backend.namespace

    def state(self, sandbox_id: str) -> ContainerState:
        backend = self._host.backend
        if not backend.claimed(sandbox_id):
            raise SandboxNotFound(sandbox_id)
        pod_state = backend.state(sandbox_id)
        if not pod_state.running:
            return pod_state
        try:
            kernel = json.loads(self._host.run(sandbox_id, CONTAINER_NAME, [*SUPERVISOR, "state"], in_argv=1))
        except SandboxNotFound:
            return ContainerState(False, None, False)
        except ValueError as exc:
            raise EngineUnavailable(f"sandbox {sandbox_id}'s supervisor sent a malformed state") from exc
        code = kernel.get("exit_code")
        return ContainerState(kernel.get("running") is True, code if isinstance(code, int) else None,
                              kernel.get("oom_killed") is True)

    def remove(self, sandbox_id: str) -> None:
        """Stop the kernel; the pod, and its files, stay until the sandbox is discarded. A stop that fails is
        logged, not raised: the kernel is the sandbox's own, the pod's limits bound it, and discarding the
        sandbox (which follows a removal) must not depend on it."""
        try:
            self._host.run(sandbox_id, CONTAINER_NAME, [*SUPERVISOR, "stop"], in_argv=1)
        except SandboxNotFound:
            pass
        except EngineUnavailable as exc:
            log.warning("could not stop the kernel of sandbox %s: %s", sandbox_id, exc)
        self._host.stopped.add(sandbox_id)

    def list_labels(self) -> list[dict[str, str]]:
        """Every claim whose kernel this server did not stop: what the reaper takes for a running container."""
        return [labels for labels in self._host.backend.list_labels()
                if labels.get("id") not in self._host.stopped]

    def ping(self) -> bool:
        return self._host.backend.ping()

    def stopped_containers(self) -> LostPods:
        return LostPods(self._host.backend.lost, self._poll_interval, self._closed)

    def close(self) -> None:
        self._closed.set()


class LostPods:
    """runtime.StopStream for pods: the cluster's lost ones, polled (a kernel that dies in a live pod closes its
    channel, which the engine sees by itself)."""

    def __init__(self, lost: Callable[[], list[str]], interval: float, closed: threading.Event) -> None:
        self._lost, self._interval = lost, interval
        self._closed, self._mine = closed, threading.Event()

    def __iter__(self) -> Iterator[str]:
        seen: set[str] = set()
        while not (self._closed.wait(self._interval) or self._mine.is_set()):
            try:
                lost = set(self._lost())
            except EngineUnavailable:
                continue  # asked again next time: a missed poll is no reason to check every sandbox at once
            yield from sorted(lost - seen)
            seen = lost

    def close(self) -> None:
        self._mine.set()

