"""A process in a kernel pod's container, started through the API server's `pods/exec` subresource and attached
over its WebSocket (the channel.k8s.io protocols: one channel byte before each message), as a
kernel_channel.ExecLink: what the kernel relay and the file agent talk over on Kubernetes (issue 33).

The API server authenticates the exec (the server's service account, RBAC `create` on `pods/exec`), so no port
of the pod is open to anybody. Two threads pump between the WebSocket and one end of a socket pair; the other end
is the link's socket, so the relay polls it and the file agent times out on it exactly as on Docker's.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import certifi
import kubernetes.client
import websocket
from kubernetes.stream.ws_client import V4_CHANNEL_PROTOCOL, V5_CHANNEL_PROTOCOL, get_websocket_url

from orchestrator.sandbox.errors import EngineUnavailable, SandboxNotFound

_STDIN, _STDOUT, _STDERR, _STATUS, _CLOSE = 0, 1, 2, 3, 255
_STDERR_KEPT = 4096
_STATUS_KEPT = 16 << 10
_CONNECT_TIMEOUT = 30.0
_READ_SIZE = 1 << 16


def _ssl_options(configuration: kubernetes.client.Configuration) -> dict[str, Any]:
    """The TLS settings the client's own REST calls use (the kubeconfig's CA, client certificate, server name)."""
    if not configuration.verify_ssl:
        options: dict[str, Any] = {"cert_reqs": ssl.CERT_NONE}
    else:
        options = {"cert_reqs": ssl.CERT_REQUIRED, "ca_certs": configuration.ssl_ca_cert or certifi.where()}
        if configuration.assert_hostname is not None:
            options["check_hostname"] = configuration.assert_hostname
    if configuration.cert_file:
        options |= {"certfile": configuration.cert_file, "keyfile": configuration.key_file}
    if configuration.tls_server_name:
        options["server_hostname"] = configuration.tls_server_name
    return options


def open_pod_exec(api: kubernetes.client.ApiClient, namespace: str, pod: str, container: str, command: list[str],
                  *, running: Callable[[], bool | None], sandbox_id: str) -> PodExec:
    """Start `command` in the pod's container, attached. SandboxNotFound if the pod or container is gone (404, or
    400: not running), EngineUnavailable if the API server cannot be reached or refuses."""
    configuration = api.configuration
    path = f"/api/v1/namespaces/{quote(namespace, safe='')}/pods/{quote(pod, safe='')}/exec"
    query = [("container", container), ("command", command), ("stdin", "true"), ("stdout", "true"),
             ("stderr", "true"), ("tty", "false")]
    url = get_websocket_url(configuration.host + path, query)
    headers = [f"sec-websocket-protocol: {V5_CHANNEL_PROTOCOL},{V4_CHANNEL_PROTOCOL}"]
    token = (configuration.auth_settings().get("BearerToken") or {}).get("value")
    if token:
        headers.append(f"authorization: {token}")
    ws = websocket.WebSocket(sslopt=_ssl_options(configuration), skip_utf8_validation=True)
    try:
        ws.connect(url, header=headers, timeout=_CONNECT_TIMEOUT, suppress_origin=True)
    except websocket.WebSocketBadStatusException as exc:
        if exc.status_code in (400, 404):
            raise SandboxNotFound(sandbox_id) from exc
        raise EngineUnavailable(f"the Kubernetes API refused an exec in pod {pod} ({exc.status_code}); "
                                "does the Role grant create on pods/exec?") from exc
    except (websocket.WebSocketException, OSError) as exc:
        raise EngineUnavailable(f"the Kubernetes API is not reachable for an exec in pod {pod}: {exc}") from exc
    ws.settimeout(None)
    return PodExec(ws, running)


class PodExec:
    """An attached exec over its WebSocket: a kernel_relay.Stream of the process's stdin and stdout."""

    def __init__(self, ws: websocket.WebSocket, running: Callable[[], bool | None]) -> None:
        self._ws, self._running = ws, running
        self._ours, self._theirs = socket.socketpair()
        self.stderr_tail = b""
        self.status: dict[str, Any] | None = None  # what the API server said of the process's end
        self._pumps, self._guard = 2, threading.Lock()
        for target, name in ((self._to_process, "pod-exec-in"), (self._from_process, "pod-exec-out")):
            threading.Thread(target=target, name=name, daemon=True).start()

    @property
    def sock(self) -> socket.socket:
        return self._ours

    def fileno(self) -> int:
        return self._ours.fileno()

    def recv(self) -> bytes | None:
        try:
            return self._ours.recv(_READ_SIZE)
        except BlockingIOError:
            return None

    def send(self, data: bytes) -> int:
        try:
            return self._ours.send(data)
        except BlockingIOError:
            return 0

    def target_running(self) -> bool | None:
        return self._running()

    def close(self) -> None:
        """End the exec: the process's stdin closes (the relay and the agent exit on that), both pumps stop."""
        for sock in (self._ours, self._theirs):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError, websocket.WebSocketException):
            self._ws.abort()  # wakes the reading pump
        self._ours.close()

    def _to_process(self) -> None:
        try:
            while data := self._theirs.recv(_READ_SIZE):
                self._ws.send(bytes([_STDIN]) + data, opcode=websocket.ABNF.OPCODE_BINARY)
        except (OSError, websocket.WebSocketException):
            pass
        self._end()

    def _from_process(self) -> None:
        try:
            while True:
                opcode, frame = self._ws.recv_data_frame()
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    break
                data = memoryview(frame.data)
                if not data:
                    continue
                channel, payload = data[0], data[1:]
                if channel == _STDOUT:
                    self._theirs.sendall(payload)
                elif channel == _STDERR:
                    self.stderr_tail = (self.stderr_tail + bytes(payload))[-_STDERR_KEPT:]
                elif channel == _STATUS and len(payload) <= _STATUS_KEPT:
                    with contextlib.suppress(ValueError):
                        self.status = json.loads(bytes(payload))
        except (OSError, websocket.WebSocketException):
            pass
        self._end()

    def _end(self) -> None:
        """The process or the connection ended: our end reads EOF, and the WebSocket is let go. The last pump to
        stop closes the pumps' socket (closed earlier, its descriptor number could be reused under the other)."""
        with contextlib.suppress(OSError):
            self._theirs.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError, websocket.WebSocketException):
            self._ws.abort()
        with self._guard:
            self._pumps -= 1
            last = self._pumps == 0
        if last:
            self._theirs.close()
            with contextlib.suppress(OSError, websocket.WebSocketException):
                self._ws.shutdown()
