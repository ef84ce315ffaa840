"""A remote host: sandboxes on a Docker Engine reached through its API alone (issue 33), sharing no path with the
server. tcp:// endpoints use TLS client certificates (Docker's ca.pem, cert.pem, key.pem); ssh:// is an OpenSSH
forward of the engine's socket to a private one here (ssh_forward.py), then used as unix:// is; unix:// is a socket
of this machine, used as if it were far away.

/mnt/data is a tmpfs volume of the engine, size-limited, mounted in the sandbox and in a "keeper" container
(`sleep`, hardened like a sandbox, under runc). The keeper holds the volume mounted while the sandbox's container
is reclaimed or replaced (a tmpfs volume is emptied when no container mounts it), and the server's file
operations run in it (remote_files.py), so they work whether the kernel runs or not.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import docker
import docker.errors
import docker.tls
import docker.types
import requests.exceptions
import zmq

from orchestrator.sandbox.errors import EngineUnavailable, SandboxStartFailed
from orchestrator.sandbox.hardening import Limits
from orchestrator.sandbox.kernel import Transport
from orchestrator.sandbox.kernel_channel import new_sandbox_connection, open_channel
from orchestrator.sandbox.remote_container import create_data_volume, data_volume_name, start_sandbox
from orchestrator.sandbox.remote_files import KEPT_CONNECTION, KEPT_META, RemoteFiles, docker_agents, keep_command
from orchestrator.sandbox.runtime import CONTAINER_DATA_DIR, LABEL_PREFIX, DockerRuntime, hardened_host_config
from orchestrator.sandbox.ssh_forward import SshForward, is_ssh

# Not the sandboxes' namespace label: a keeper is never listed, watched or swept as a sandbox.
KEEPER_LABEL = f"{LABEL_PREFIX}keeper-namespace"
_KEEPER_LIMITS = Limits(128 << 20, 0.5, 32, "1m")
_PING_TIMEOUT = 3
_API_TIMEOUT = 60
_ERRORS = (docker.errors.DockerException, requests.exceptions.RequestException)
# Fixed, not negotiated: negotiating is a request made before trust_env can be turned off below (Docker Engine
# 20.10 and every later one speak it).
API_VERSION = "1.41"


def docker_client(endpoint: str, tls_dir: Path | None, timeout: int) -> docker.DockerClient:
    """A client of `endpoint`; tcp:// requires `tls_dir` (mutual TLS, this CA only). Not ssh://: its SshForward's
    url is the endpoint to give."""
    if endpoint.startswith("tcp://"):
        if tls_dir is None:
            raise EngineUnavailable(f"{endpoint}: a tcp:// sandbox host needs TOOLSHED_SANDBOX_TLS_DIR (ca.pem, "
                                    "cert.pem, key.pem); the Docker API without TLS is root on that machine")
        tls = docker.tls.TLSConfig(client_cert=(str(tls_dir / "cert.pem"), str(tls_dir / "key.pem")),
                                   ca_cert=str(tls_dir / "ca.pem"), verify=True)
        client = docker.DockerClient(base_url=endpoint.replace("tcp://", "https://", 1), tls=tls, timeout=timeout,
                                     version=API_VERSION)
    elif is_ssh(endpoint):
        raise EngineUnavailable(f"{endpoint}: docker-py's ssh transport cannot carry exec streams; use SshForward")
    else:
        client = docker.DockerClient(base_url=endpoint, timeout=timeout, version=API_VERSION)
    # requests would let REQUESTS_CA_BUNDLE replace the CA given here, and route the engine through a proxy.
    client.api.trust_env = False
    return client


def engine_runtimes(endpoint: str, tls_dir: Path | None, image: str) -> list[str]:
    """The OCI runtimes the engine has registered; EngineUnavailable if it does not answer or lacks `image`."""
    forward = SshForward(endpoint) if is_ssh(endpoint) else None
    try:
        if forward is not None:
            forward.start()
        client = docker_client(forward.url if forward else endpoint, tls_dir, 30)
        try:
            registered = sorted(client.info().get("Runtimes") or {})
            client.images.get(image)
        finally:
            client.close()
    except docker.errors.ImageNotFound as exc:
        raise EngineUnavailable(f"{endpoint} has no sandbox image {image}: `docker save {image}` here and "
                                "`docker load` there") from exc
    except _ERRORS as exc:
        # Over ssh, why the remote socket could not be opened is in ssh's own words.
        said = f" (ssh: {forward.errors})" if forward is not None and forward.errors else ""
        raise EngineUnavailable(f"{endpoint} is not answering: {exc}{said}") from exc
    finally:
        if forward is not None:
            forward.close()
    return registered


class RemoteHost:
    def __init__(self, endpoint: str, *, tls_dir: Path | None, image: str, namespace: str, uid: int,
                 oci_runtime: str, disk_bytes: int, max_message_bytes: int) -> None:
        self._endpoint = endpoint
        # The relay's own sockets (this server's end of each kernel channel) share one IO thread.
        self._context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self._max_message_bytes = max_message_bytes
        self._forward = SshForward(endpoint) if is_ssh(endpoint) else None
        try:
            if self._forward is not None:
                self._forward.start()
            url = self._forward.url if self._forward is not None else endpoint
            self._client = docker_client(url, tls_dir, _API_TIMEOUT)
            self._pinger = docker_client(url, tls_dir, _PING_TIMEOUT)
        except BaseException as exc:
            self._close_forward()
            if isinstance(exc, _ERRORS):
                raise EngineUnavailable(f"sandbox host {endpoint}: {exc}") from exc
            raise
        self._api = self._client.api
        self._image, self._namespace, self._uid = image, namespace, uid
        self._oci_runtime, self._disk_bytes = oci_runtime, disk_bytes
        self._runtime = DockerRuntime(self._client, image=image, namespace=namespace, uid=uid,
                                      oci_runtime=oci_runtime)
        self._files = RemoteFiles(docker_agents(self._api, keeper_name, uid=uid))

    @property
    def name(self) -> str:
        return self._endpoint

    @property
    def watched(self) -> bool:
        return True

    @property
    def runtime(self) -> DockerRuntime:
        return self._runtime

    @property
    def files(self) -> RemoteFiles:
        return self._files

    def memory_bytes(self) -> int:
        try:
            return int(self._client.info()["MemTotal"])
        except _ERRORS as exc:
            raise EngineUnavailable(f"sandbox host {self._endpoint} is not answering: {exc}") from exc

    def alive(self) -> bool:
        # A forward that died is started again here: within a check of the host watch, or at once when a
        # cell's engine refuses a request; a host whose sshd is gone stays unanswering.
        if self._forward is not None and not self._forward.ensure(_PING_TIMEOUT):
            return False
        try:
            return bool(self._pinger.ping())
        except _ERRORS:
            return False

    def prepare(self, sandbox_id: str) -> dict[str, Any]:
        if not self.has_files(sandbox_id):
            # A keeper that stopped (its engine restarted) took the tmpfs with it: what is left goes first.
            self.discard(sandbox_id)
            self._make_keeper(sandbox_id)
        return new_sandbox_connection()

    def _make_keeper(self, sandbox_id: str) -> None:
        labels = {"keeper-namespace": self._namespace, "keeper-of": sandbox_id}
        volume = create_data_volume(self._api, sandbox_id, size_bytes=self._disk_bytes, uid=self._uid, labels=labels)
        # tmpfs pages are charged to the memory of whoever writes them: the keeper's file agent writes uploads.
        limits = replace(_KEEPER_LIMITS, memory_bytes=_KEEPER_LIMITS.memory_bytes + self._disk_bytes)
        config = hardened_host_config(self._api, limits, "runc", mounts=[
            docker.types.Mount(CONTAINER_DATA_DIR, volume, type="volume")])
        try:
            created = self._api.create_container(
                self._image, ["sleep", "infinity"], name=keeper_name(sandbox_id), user=f"{self._uid}:{self._uid}",
                labels={f"{LABEL_PREFIX}{k}": v for k, v in labels.items()}, host_config=config)
            self._api.start(created["Id"])
        except docker.errors.APIError as exc:
            raise SandboxStartFailed(f"could not start the sandbox's file keeper: {exc.explanation or exc}") from exc
        except _ERRORS as exc:
            raise EngineUnavailable(f"sandbox host {self._endpoint}: {exc}") from exc

    def launch(self, sandbox_id: str, *, limits: Limits, labels: dict[str, str], connection: dict[str, Any],
               replace: bool) -> None:
        if replace:  # a new container, not a restart: its connection (key, ports) comes in at creation
            self._runtime.remove(sandbox_id)
        # Kept where the sandbox cannot reach, to reconnect after a server restart.
        self._keep(sandbox_id, KEPT_CONNECTION, connection)
        start_sandbox(self._api, sandbox_id, image=self._image, uid=self._uid, limits=limits,
                      oci_runtime=self._oci_runtime, data_volume=data_volume_name(sandbox_id), connection=connection,
                      labels=labels | {"namespace": self._namespace, "runtime": self._oci_runtime,
                                       "host": self._endpoint})

    def reach(self, sandbox_id: str, connection: dict[str, Any]) -> tuple[dict[str, Any], Transport | None]:
        channel = open_channel(self._api, DockerRuntime.container_name(sandbox_id), connection,
                               context=self._context, max_message_bytes=self._max_message_bytes)
        return channel.connection_info, channel

    def seal(self, sandbox_id: str, connection: dict[str, Any]) -> None:
        """Nothing to take back: the kernel's sockets are on the container's own loopback."""

    def saved_connection(self, sandbox_id: str) -> dict[str, Any]:
        try:
            return dict(json.loads(self._exec(keeper_name(sandbox_id), ["cat", KEPT_CONNECTION])))
        except EngineUnavailable as exc:
            raise ValueError(f"no kernel connection kept: {exc}") from exc

    def release(self, sandbox_id: str) -> None:
        """The keeper holds the files."""

    def discard(self, sandbox_id: str) -> None:
        self._files.forget(sandbox_id)  # its file agent runs in the keeper
        # The keeper first: a volume in use cannot be removed.
        for remove, name in ((self._api.remove_container, keeper_name(sandbox_id)),
                             (self._api.remove_volume, data_volume_name(sandbox_id))):
            try:
                remove(name, force=True)
            except docker.errors.NotFound:
                pass
            except _ERRORS as exc:
                raise EngineUnavailable(f"sandbox host {self._endpoint}: {exc}") from exc

    def has_files(self, sandbox_id: str) -> bool:
        try:
            return bool(self._api.inspect_container(keeper_name(sandbox_id))["State"]["Running"])
        except docker.errors.NotFound:
            return False
        except _ERRORS as exc:
            raise EngineUnavailable(f"sandbox host {self._endpoint}: {exc}") from exc

    def save_meta(self, sandbox_id: str, meta: dict[str, Any]) -> None:
        self._keep(sandbox_id, KEPT_META, meta)

    def _keep(self, sandbox_id: str, path: str, value: dict[str, Any]) -> None:
        """Write `value` to a file of the keeper's own /tmp, which the sandbox cannot reach (a label cannot be
        changed after creation)."""
        self._exec(keeper_name(sandbox_id), keep_command(path, value))

    def _keepers(self) -> list[dict[str, Any]]:
        try:
            return list(self._api.containers(all=True, filters={"label": f"{KEEPER_LABEL}={self._namespace}"}))
        except _ERRORS as exc:
            raise EngineUnavailable(f"sandbox host {self._endpoint}: {exc}") from exc

    def prune(self, keep: Callable[[str], bool]) -> None:
        for keeper in self._keepers():
            sandbox_id = (keeper.get("Labels") or {}).get(f"{LABEL_PREFIX}keeper-of", "")
            if sandbox_id and not keep(sandbox_id):
                self.discard(sandbox_id)

    def load_metas(self) -> list[dict[str, Any]]:
        metas = []
        for keeper in self._keepers():
            try:
                metas.append(json.loads(self._exec(keeper["Id"], ["cat", KEPT_META])))
            except (ValueError, EngineUnavailable):
                continue
        return metas

    def _exec(self, container: str, command: list[str]) -> bytes:
        try:
            exec_id = self._api.exec_create(container, command, stdout=True, stderr=False)["Id"]
            output = self._api.exec_start(exec_id)
            if self._api.exec_inspect(exec_id).get("ExitCode") != 0:
                raise EngineUnavailable(f"{command[0]} failed in {container}")
            return bytes(output)
        except _ERRORS as exc:
            raise EngineUnavailable(f"sandbox host {self._endpoint}: {exc}") from exc

    def claim(self) -> None:
        """Not checked on a remote host: give every server its own TOOLSHED_NAMESPACE."""

    def adopt(self, sandbox_id: str) -> None:
        """The files never left the engine."""

    def close(self) -> None:
        self._files.close()
        self._client.close()
        self._pinger.close()
        self._context.destroy(linger=0)
        self._close_forward()

    def _close_forward(self) -> None:
        if self._forward is not None:
            self._forward.close()


def keeper_name(sandbox_id: str) -> str:
    return f"toolshed-keep-{sandbox_id}"
