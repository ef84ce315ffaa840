"""A sandbox kernel reached without a shared filesystem (issue 33): its launch, and its five channels carried over
a Docker exec's attached stdin/stdout.

The kernel listens on tcp 127.0.0.1 inside the container, under a connection file the server generated. The Docker
API authenticates the exec (over tcp:// by the TLS client certificate), the kernel's HMAC key stays on every
message, and jupyter_client connects to IPC sockets in a 0700 folder of the server's own, which only this uid can
reach; loopback ports would let any local user connect and read iopub, which is not signed for readers.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import select
import shutil
import socket
import ssl
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Protocol

import docker
import docker.errors
import requests.exceptions
import zmq

from orchestrator.sandbox import kernel_relay
from orchestrator.sandbox.errors import SandboxStartFailed

SANDBOX_CONNECTION_FILE = "/tmp/toolshed-run/kernel.json"
# The container's command: wait for the connection file, which the server writes with an exec once the container
# runs, then become the kernel (still the container's main process, so its death is the container's). Nothing
# else reaches a container before its kernel starts: a bind mount is a host path, the archive endpoint cannot
# write to a tmpfs, and in the environment the key would stay readable in /proc/1/environ all the sandbox's life.
BOOTSTRAP = f"""import os, time
while not os.path.exists({SANDBOX_CONNECTION_FILE!r}):
    time.sleep(0.01)
os.execvp("toolshed-kernel", ["toolshed-kernel", {SANDBOX_CONNECTION_FILE!r}])
"""
KERNEL_COMMAND = ["python3", "-c", BOOTSTRAP]
# Run by that exec, as the sandbox uid, before any code of the sandbox's runs: the file appears whole (renamed).
_DELIVER = f"""import os, sys
os.makedirs(os.path.dirname({SANDBOX_CONNECTION_FILE!r}), mode=0o700, exist_ok=True)
part = {SANDBOX_CONNECTION_FILE!r} + ".part"
fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
os.write(fd, sys.argv[1].encode())
os.close(fd)
os.rename(part, {SANDBOX_CONNECTION_FILE!r})
"""
DELIVER_COMMAND = ["python3", "-I", "-c", _DELIVER]  # the connection's JSON follows, as one argument
_DOCKER_HEADER = 8
_STDOUT, _STDERR = 1, 2
_STDERR_KEPT = 4096


def new_sandbox_connection() -> dict[str, Any]:
    """Connection info for a kernel listening on the container's loopback: fresh ports and a fresh HMAC key."""
    ports = secrets.SystemRandom().sample(range(20000, 60000), len(kernel_relay.CHANNELS))
    info: dict[str, Any] = {f"{name}_port": port for name, port in zip(kernel_relay.CHANNELS, ports, strict=True)}
    return info | {"transport": "tcp", "ip": "127.0.0.1", "key": secrets.token_hex(32),
                   "signature_scheme": "hmac-sha256", "kernel_name": "python3"}


def deliver_connection(api: docker.APIClient, container_id: str, connection: dict[str, Any]) -> None:
    """Give a started sandbox its kernel's connection file (blocking); SandboxStartFailed if that fails."""
    try:
        exec_id = api.exec_create(container_id, [*DELIVER_COMMAND, json.dumps(connection)],
                                  stdout=True, stderr=True)["Id"]
        output = api.exec_start(exec_id)
        code = api.exec_inspect(exec_id).get("ExitCode")
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise SandboxStartFailed(f"could not hand the kernel its connection: {exc}") from exc
    if code != 0:
        raise SandboxStartFailed(f"could not hand the kernel its connection (exit {code}): "
                                 f"{bytes(output)[-400:].decode(errors='replace')}")


class ExecLink(Protocol):
    """An attached exec of a sandbox's container, whatever the engine: a kernel_relay.Stream of the process's
    stdin and stdout (its stderr's end kept), the socket to poll and time out on, and its owner's verdict when it
    fails. Docker's is DockerExec; Kubernetes' is kubernetes/pod_exec.py's PodExec."""

    @property
    def sock(self) -> socket.socket: ...
    @property
    def stderr_tail(self) -> bytes: ...
    def fileno(self) -> int: ...
    def recv(self) -> bytes | None: ...
    def send(self, data: bytes) -> int: ...
    def close(self) -> None: ...

    def target_running(self) -> bool | None:
        """Whether the container the exec ran in still runs; None when its engine cannot tell now."""
        ...


class ExecStream:
    """A Docker exec's attached connection as a kernel_relay.Stream: what goes in is the relay's stdin; what comes
    out is Docker's multiplexed stdout/stderr, of which stdout is returned and the end of stderr kept."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._header = bytearray()
        self._left, self._kind = 0, 0
        self.stderr_tail = b""

    @property
    def sock(self) -> socket.socket:
        return self._sock

    def fileno(self) -> int:
        return self._sock.fileno()

    def recv(self) -> bytes | None:
        while True:
            try:
                raw = self._sock.recv(1 << 16)
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return None
            if not raw:
                return b""
            out = self._demux(memoryview(raw))
            if out:
                return out

    def _demux(self, raw: memoryview) -> bytes:
        out, pos = bytearray(), 0
        while pos < len(raw):
            if self._left == 0:
                take = min(_DOCKER_HEADER - len(self._header), len(raw) - pos)
                self._header += raw[pos:pos + take]
                pos += take
                if len(self._header) == _DOCKER_HEADER:
                    self._kind, self._left = self._header[0], int.from_bytes(self._header[4:], "big")
                    self._header.clear()
                continue
            take = min(self._left, len(raw) - pos)
            if self._kind == _STDOUT:
                out += raw[pos:pos + take]
            elif self._kind == _STDERR:
                self.stderr_tail = (self.stderr_tail + bytes(raw[pos:pos + take]))[-_STDERR_KEPT:]
            pos, self._left = pos + take, self._left - take
        return bytes(out)

    def send(self, data: bytes) -> int:
        try:
            return self._sock.send(data)
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return 0


class DockerExec(ExecStream):
    """An ExecLink over docker-py's exec_start(socket=True): the socket of the upgraded connection (TLS) or its
    SocketIO (a Unix socket)."""

    def __init__(self, api: docker.APIClient, container: str, attached: Any) -> None:
        super().__init__(getattr(attached, "_sock", attached))
        self._api, self._container, self._attached = api, container, attached

    def close(self) -> None:
        close_attached(self._attached)

    def target_running(self) -> bool | None:
        try:
            return bool(self._api.inspect_container(self._container)["State"].get("Running"))
        except docker.errors.NotFound:
            return False
        except (docker.errors.DockerException, requests.exceptions.RequestException):
            return None


def start_exec(api: docker.APIClient, container: str, command: list[str], **options: Any) -> DockerExec:
    """Start `command` in `container`, attached (stdin, stdout, stderr); docker-py's errors propagate."""
    exec_id = api.exec_create(container, command, stdin=True, stdout=True, stderr=True, tty=False,
                              **options)["Id"]
    return DockerExec(api, container, api.exec_start(exec_id, socket=True))


class KernelChannel:
    """One sandbox kernel's channels, relayed between IPC sockets of this server and the sandbox's loopback."""

    def __init__(self, connection_info: dict[str, Any], relay: kernel_relay.Relay, link: ExecLink,
                 folder: Path) -> None:
        self.connection_info = connection_info
        self._relay, self._link, self._folder = relay, link, folder
        self._thread = threading.Thread(target=relay.run, name="kernel-relay", daemon=True)
        self._thread.start()

    @property
    def open(self) -> bool:
        """False once the exec stream has ended (the container or its relay is gone) or close() was called."""
        return self._thread.is_alive()

    @property
    def relay_errors(self) -> str:
        """The end of what the sandbox's relay wrote to stderr, for diagnostics."""
        return self._link.stderr_tail.decode(errors="replace")

    def close(self) -> None:
        self._relay.stop()
        self._thread.join(timeout=10)
        self._link.close()
        shutil.rmtree(self._folder, ignore_errors=True)


def close_attached(attached: Any) -> None:
    """Close what docker-py's exec_start(socket=True) gave for good. The socket stays open while a file made of it
    is, and the HTTP response that read the upgrade holds one: that response goes first (closing it after its
    file is an error), then the socket, then the wrapper."""
    for closable in (getattr(attached, "_response", None), getattr(attached, "_sock", None), attached):
        if closable is not None:
            with contextlib.suppress(OSError, ValueError):
                closable.close()


def relay_command(sandbox_connection: dict[str, Any], max_message_bytes: int) -> list[str]:
    """The sandbox end of the channel: kernel_relay.py run by the image's python, on the kernel's ports."""
    ports = [int(sandbox_connection[f"{name}_port"]) for name in kernel_relay.CHANNELS]
    return ["python3", "-c", Path(kernel_relay.__file__).read_text(), str(max_message_bytes), *map(str, ports)]


def open_channel(api: docker.APIClient, container_id: str, sandbox_connection: dict[str, Any], *,
                 context: zmq.Context[zmq.Socket[bytes]], max_message_bytes: int = 16 << 20,
                 timeout: float = 30.0) -> KernelChannel:
    """Start the relay in the container through Docker's exec; see connect_channel."""
    try:
        link = start_exec(api, container_id, relay_command(sandbox_connection, max_message_bytes))
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise SandboxStartFailed(f"could not start the kernel relay: {exc}") from exc
    return connect_channel(link, sandbox_connection, context=context, max_message_bytes=max_message_bytes,
                           timeout=timeout)


def connect_channel(link: ExecLink, sandbox_connection: dict[str, Any], *,
                    context: zmq.Context[zmq.Socket[bytes]], max_message_bytes: int = 16 << 20,
                    timeout: float = 30.0) -> KernelChannel:
    """Greet the relay `link` runs and bind this server's end; its connection_info is for jupyter_client.
    SandboxStartFailed if the relay does not answer in time."""
    rest = _handshake(link, time.monotonic() + timeout)
    folder = Path(tempfile.mkdtemp(prefix="tsk-"))  # mkdtemp makes it 0700
    info = {**sandbox_connection, "transport": "ipc", "ip": str(folder / "k")}
    sockets = _server_sockets(context, info)
    relay = kernel_relay.Relay(sockets, link, max_message_bytes=max_message_bytes, initial=rest)
    return KernelChannel(info, relay, link, folder)


def _handshake(link: ExecLink, deadline: float) -> bytes:
    """Greet the sandbox's relay and wait for its greeting; what followed it."""
    sock = link.sock
    sock.settimeout(max(deadline - time.monotonic(), 0.1))
    sock.sendall(kernel_relay.HELLO)
    sock.setblocking(False)
    got = b""
    readable = select.poll()  # poll, not select: a busy server's descriptors pass 1024
    readable.register(sock, select.POLLIN)
    while len(got) < len(kernel_relay.HELLO) and time.monotonic() < deadline:
        readable.poll(100)
        data = link.recv()
        if data == b"":
            break
        got += data or b""
    if not got.startswith(kernel_relay.HELLO):
        link.close()
        raise SandboxStartFailed(f"the kernel relay did not answer: {link.stderr_tail.decode(errors='replace')}")
    return got[len(kernel_relay.HELLO):]


def _server_sockets(context: zmq.Context[zmq.Socket[bytes]], info: dict[str, Any]) -> list[zmq.Socket[bytes]]:
    """ROUTERs for the request channels (replies find their client by identity) and a PUB for iopub."""
    sockets = []
    for name in kernel_relay.CHANNELS:
        sock = context.socket(zmq.PUB if name == "iopub" else zmq.ROUTER)
        sock.bind(f"ipc://{info['ip']}-{info[f'{name}_port']}")
        sockets.append(sock)
    return sockets
