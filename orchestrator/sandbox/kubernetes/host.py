"""Kubernetes as a sandbox host (issue 33): each sandbox a kernel pod claimed through agent-sandbox (backend.py),
reached only through the API server's `pods/exec`, as a remote Docker engine is reached through its exec API.

A pod has two containers over one emptyDir /mnt/data: the kernel's, whose first process is the supervisor
(kernel_supervisor.py), and the files container, where the file agent runs and the server keeps what the kernel
must not read. Stopping a sandbox's "container" (a reclaim, a restart) stops its kernel, not its pod: the files
stay until the sandbox is discarded, which gives the claim back. The kernel's key is a fresh one per start, handed
in by an exec as on Docker, so nothing but this server, through the API server, can reach a kernel.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import zmq

from orchestrator.sandbox.errors import EngineUnavailable, SandboxNotFound, SandboxStartFailed
from orchestrator.sandbox.hardening import Limits
from orchestrator.sandbox.kernel import Transport
from orchestrator.sandbox.kernel_channel import DELIVER_COMMAND, connect_channel, new_sandbox_connection, relay_command
from orchestrator.sandbox.kubernetes.backend import KubernetesBackend
from orchestrator.sandbox.kubernetes.manifests import CONTAINER_NAME, FILES_CONTAINER
from orchestrator.sandbox.kubernetes.pod_exec import PodExec, booted, open_pod_exec
from orchestrator.sandbox.kubernetes.pod_runtime import SUPERVISOR, PodRuntime
from orchestrator.sandbox.remote_files import AGENT_COMMAND, KEPT_CONNECTION, KEPT_META, RemoteFiles, keep_command

NAME = "kubernetes"
# Prints the file, or nothing if there is none (exit 0 either way: only a failed exec is an error).
_READ = ["python3", "-I", "-c", "import sys\ntry:\n    print(open(sys.argv[1]).read())\nexcept FileNotFoundError:\n"
         "    pass"]
# How long a short exec (a state, a stop, a delivery) may take in all.
_EXEC_TIMEOUT = 30.0

class KubernetesHost:
    def __init__(self, backend: KubernetesBackend, *, max_message_bytes: int, poll_interval: float = 2.0) -> None:
        self._backend = backend
        self._context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self._max_message_bytes = max_message_bytes
        self._runtime = PodRuntime(self, poll_interval)
        self._files = RemoteFiles(lambda sandbox_id: self.open_exec(sandbox_id, FILES_CONTAINER, AGENT_COMMAND))
        # The uid of each sandbox's pod as this server first saw it: a pod recreated under the same name (the
        # Sandbox controller does that for a pod that was deleted) has lost the files.
        self._uids: dict[str, str] = {}
        # Sandboxes whose kernel this server stopped and did not start since: not "containers" the reaper sweeps.
        self.stopped: set[str] = set()

    @property
    def name(self) -> str:
        return NAME

    @property
    def watched(self) -> bool:
        return False

    @property
    def runtime(self) -> PodRuntime:
        return self._runtime

    @property
    def files(self) -> RemoteFiles:
        return self._files

    @property
    def backend(self) -> KubernetesBackend:
        return self._backend

    def memory_bytes(self) -> int:
        """The cluster's scheduler places pods; among hosts, the cluster counts as one of unbounded memory."""
        return 1 << 60

    def alive(self) -> bool:
        return self._backend.ping()

    # ---- execs ---------------------------------------------------------------------------------------------

    def pod(self, sandbox_id: str) -> str:
        """The sandbox's pod; SandboxNotFound when it has none (no claim, a pod gone or ended, or replaced)."""
        found = self._backend.pod_of(sandbox_id)
        if found is None or self._uids.setdefault(sandbox_id, found[1]) != found[1]:
            raise SandboxNotFound(sandbox_id)
        return found[0]

    def open_exec(self, sandbox_id: str, container: str, command: list[str], *, in_argv: int = 0) -> PodExec:
        pod = self.pod(sandbox_id)
        command, preamble = booted(command, in_argv=in_argv)
        link = open_pod_exec(self._backend.api_client, self._backend.k8s_namespace, pod, container, command,
                             running=lambda: self._backend.container_running(pod, container), sandbox_id=sandbox_id)
        try:
            link.sock.settimeout(_EXEC_TIMEOUT)
            link.sock.sendall(preamble)
        except OSError as exc:
            link.close()
            raise EngineUnavailable(f"an exec in sandbox {sandbox_id}'s pod ended at once: {exc}") from exc
        return link

    def run(self, sandbox_id: str, container: str, command: list[str], *, in_argv: int = 0) -> bytes:
        """Run a short command to its end; its stdout. EngineUnavailable if it fails or outlasts _EXEC_TIMEOUT."""
        link = self.open_exec(sandbox_id, container, command, in_argv=in_argv)
        try:
            output = _read_all(link)
        finally:
            link.close()
        if link.status is None or link.status.get("status") != "Success":
            raise EngineUnavailable(f"a command failed in sandbox {sandbox_id}'s {container} container: "
                                    f"{link.stderr_tail.decode(errors='replace')[-400:]}")
        return output

    # ---- SandboxHost ---------------------------------------------------------------------------------------

    def prepare(self, sandbox_id: str) -> dict[str, Any]:
        """The files come with the pod, claimed at launch; a claim whose pod is gone goes first."""
        if self._backend.claimed(sandbox_id) and not self.has_files(sandbox_id):
            self.discard(sandbox_id)
        return new_sandbox_connection()

    def launch(self, sandbox_id: str, *, limits: Limits, labels: dict[str, str], connection: dict[str, Any],
               replace: bool) -> None:
        self.stopped.discard(sandbox_id)
        try:
            if not self._backend.claimed(sandbox_id):
                self._uids[sandbox_id] = self._backend.create(sandbox_id, limits=limits,
                                                              labels=labels | {"host": NAME})[1]
            else:
                self._backend.renew(sandbox_id)
                if replace:
                    self.run(sandbox_id, CONTAINER_NAME, [*SUPERVISOR, "stop"], in_argv=1)
            self._keep(sandbox_id, KEPT_CONNECTION, connection)
            self.run(sandbox_id, CONTAINER_NAME, [*DELIVER_COMMAND, json.dumps(connection)])
        except (EngineUnavailable, SandboxNotFound) as exc:
            # Its pod went meanwhile, or would not take the kernel: this start failed, the sandbox is still there.
            raise SandboxStartFailed(f"could not start the kernel in its pod: {exc}") from exc

    def reach(self, sandbox_id: str, connection: dict[str, Any]) -> tuple[dict[str, Any], Transport | None]:
        command = relay_command(connection, self._max_message_bytes)
        try:
            link = self.open_exec(sandbox_id, CONTAINER_NAME, command, in_argv=len(command) - 3)
        except SandboxNotFound as exc:
            raise SandboxStartFailed(f"the kernel's pod is gone: {exc}") from exc
        channel = connect_channel(link, connection, context=self._context, max_message_bytes=self._max_message_bytes)
        return channel.connection_info, channel

    def seal(self, sandbox_id: str, connection: dict[str, Any]) -> None:
        """Nothing to take back: the kernel's sockets are on the pod's own loopback."""

    def saved_connection(self, sandbox_id: str) -> dict[str, Any]:
        try:
            return dict(json.loads(self.run(sandbox_id, FILES_CONTAINER, [*_READ, KEPT_CONNECTION])))
        except (EngineUnavailable, SandboxNotFound) as exc:
            raise ValueError(f"no kernel connection kept: {exc}") from exc

    def release(self, sandbox_id: str) -> None:
        """The pod keeps the files; its kernel was stopped by runtime.remove."""

    def discard(self, sandbox_id: str) -> None:
        self._files.forget(sandbox_id)
        self._backend.remove(sandbox_id)
        self._uids.pop(sandbox_id, None)
        self.stopped.discard(sandbox_id)

    def has_files(self, sandbox_id: str) -> bool:
        """Whether the claim's pod is the one the files were written in, and its files container has not ended
        (a pod that only missed a heartbeat still has them)."""
        try:
            pod = self.pod(sandbox_id)
        except SandboxNotFound:
            return False
        return self._backend.container_running(pod, FILES_CONTAINER) is not False

    def save_meta(self, sandbox_id: str, meta: dict[str, Any]) -> None:
        self._keep(sandbox_id, KEPT_META, meta)

    def _keep(self, sandbox_id: str, path: str, value: dict[str, Any]) -> None:
        """A file of the files container's own /tmp, which the kernel cannot reach."""
        self.run(sandbox_id, FILES_CONTAINER, keep_command(path, value))

    def load_metas(self) -> list[dict[str, Any]]:
        """Every claim's record. A pod that is gone has none; an exec that fails raises (EngineUnavailable): a
        sandbox whose record could not be read would be taken for a stray and discarded, files and all."""
        metas = []
        for labels in self._backend.list_labels():
            try:
                kept = self.run(labels["id"], FILES_CONTAINER, [*_READ, KEPT_META])
            except SandboxNotFound:
                continue
            try:
                meta = json.loads(kept) if kept else None
            except ValueError:
                meta = None
            if isinstance(meta, dict):
                metas.append(meta)
        return metas

    def claim(self) -> None:
        """Not checked: give every server its own TOOLSHED_NAMESPACE (the claims' label)."""

    def adopt(self, sandbox_id: str) -> None:
        """The files never left the pod."""

    def prune(self, keep: Callable[[str], bool]) -> None:
        for labels in self._backend.list_labels():
            if labels.get("id") and not keep(labels["id"]):
                self.discard(labels["id"])

    def close(self) -> None:
        self._runtime.close()
        self._files.close()
        self._context.destroy(linger=0)


def _read_all(link: PodExec) -> bytes:
    """Everything the process writes until it ends (bounded: these are short commands of ours)."""
    link.sock.settimeout(_EXEC_TIMEOUT)
    out = bytearray()
    try:
        while data := link.sock.recv(1 << 16):
            out += data
            if len(out) > 16 << 20:
                raise EngineUnavailable("an exec wrote more than 16 MiB")
    except TimeoutError as exc:
        raise EngineUnavailable(f"an exec did not end within {_EXEC_TIMEOUT:g} s") from exc
    return bytes(out)
