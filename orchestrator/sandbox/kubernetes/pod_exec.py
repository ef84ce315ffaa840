"""A process in a kernel pod's container, started through the API server's `pods/exec` subresource and attached
over its WebSocket (the channel.k8s.io protocols: one channel byte before each message), as a
kernel_channel.ExecLink: what the kernel relay and the file agent talk over on Kubernetes (issue 33).

The API server authenticates the exec (the server's service account, RBAC `create` on `pods/exec`), so no port
of the pod is open to anybody. One thread pumps between the WebSocket and one end of a socket pair; the other end
is the link's socket, so the relay polls it and the file agent times out on it exactly as on Docker's.
"""

from __future__ import annotations

import contextlib
import json
import select
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
_HIGH_WATER = 4 << 20

# What an exec's URL carries of a script: this, which reads the script and its first arguments from stdin (a
# length line, then their JSON) before anything else comes there. An exec's command is in the URL, which the API
# server's audit log records and proxies cap (at 8 or 16 KiB): no key and no script source goes there.
_BOOT = ("import json, os, sys\n"
         "def take(n):\n"
         "    got = b''\n"
         "    while len(got) < n:\n"
         "        part = os.read(0, n - len(got))\n"
         "        if not part:\n"
         "            sys.exit(1)\n"
         "        got += part\n"
         "    return got\n"
         "head = b''\n"
         "while not head.endswith(b'\\n'):\n"
         "    head += take(1)\n"
         "given = json.loads(take(int(head)))\n"
         "sys.argv = ['-c', *given[1:], *sys.argv[1:]]\n"
         "exec(compile(given[0], '<toolshed>', 'exec'))\n")


def booted(command: list[str], *, in_argv: int = 0) -> tuple[list[str], bytes]:
    """`python3 [flags] -c SOURCE ARGS...` as a command whose URL holds _BOOT and the last `in_argv` ARGS (the
    relay's ports, which the supervisor finds it by), and what to send first on its stdin: SOURCE and the rest."""
    at = command.index("-c")
    source, args = command[at + 1], command[at + 2:]
    split = len(args) - in_argv
    payload = json.dumps([source, *args[:split]]).encode()
    return [*command[:at + 1], _BOOT, *args[split:]], str(len(payload)).encode() + b"\n" + payload


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
        # 400 is also a proxy that dropped the upgrade: only a container that is not running makes it "gone".
        if exc.status_code == 404 or (exc.status_code == 400 and running() is False):
            raise SandboxNotFound(sandbox_id) from exc
        hint = {401: "are the server's credentials still valid?",
                403: "does the Role grant create on pods/exec?"}.get(exc.status_code, "")
        raise EngineUnavailable(f"the Kubernetes API refused an exec in pod {pod} ({exc.status_code}) {hint}") from exc
    except (websocket.WebSocketException, OSError) as exc:
        raise EngineUnavailable(f"the Kubernetes API is not reachable for an exec in pod {pod}: {exc}") from exc
    ws.settimeout(None)
    # A relay's stream can sit idle for hours between cells: keepalives keep a load balancer in front of the API
    # server from dropping it as idle, and find a peer that vanished (the channel then closes, and is reconnected).
    if ws.sock is not None:
        ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for option, value in ((socket.TCP_KEEPIDLE, 30), (socket.TCP_KEEPINTVL, 10), (socket.TCP_KEEPCNT, 3)):
            ws.sock.setsockopt(socket.IPPROTO_TCP, option, value)
    return PodExec(ws, running)


class PodExec:
    """An attached exec over its WebSocket: a kernel_relay.Stream of the process's stdin and stdout."""

    def __init__(self, ws: websocket.WebSocket, running: Callable[[], bool | None]) -> None:
        self._ws, self._running = ws, running
        self._ours, self._theirs = socket.socketpair()
        self.stderr_tail = b""
        self.status: dict[str, Any] | None = None  # what the API server said of the process's end
        threading.Thread(target=self._pump, name="pod-exec", daemon=True).start()

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
        """End the exec: the process's stdin closes (the relay and the agent exit on that), and the pump stops.
        Only socket shutdowns here: the pump thread alone reads and writes the WebSocket (one TLS connection is
        not to be used from two threads at once)."""
        for sock in (self._ours, self._theirs):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._ours.close()

    def _pump(self) -> None:
        """Between the WebSocket and the pumps' end of the socket pair, in one thread. Stdout not yet taken by
        our end waits in `out`; past _HIGH_WATER the WebSocket is not read (TCP then holds the process back)."""
        ws, theirs, out = self._ws, self._theirs, bytearray()
        assert ws.sock is not None
        theirs.setblocking(False)
        poller, ended = select.poll(), False
        poller.register(ws.sock, select.POLLIN)
        poller.register(theirs, select.POLLIN)
        try:
            while not ended or out:
                take = not ended and len(out) < _HIGH_WATER
                poller.modify(ws.sock, select.POLLIN if take else 0)
                poller.modify(theirs, (0 if ended else select.POLLIN) | (select.POLLOUT if out else 0))
                buffered = take and isinstance(ws.sock, ssl.SSLSocket) and ws.sock.pending() > 0
                ready = dict(poller.poll(0 if buffered else None))
                if take and (buffered or ready.get(ws.sock.fileno(), 0)):
                    ended = self._receive(out)
                mine = ready.get(theirs.fileno(), 0)
                if mine & select.POLLOUT and out:
                    del out[:theirs.send(out)]
                if mine & (select.POLLIN | select.POLLHUP | select.POLLERR) and not ended:
                    data = theirs.recv(_READ_SIZE)
                    if not data:
                        break  # our end was closed
                    ws.send(bytes([_STDIN]) + data, opcode=websocket.ABNF.OPCODE_BINARY)
        except (OSError, websocket.WebSocketException):
            pass
        with contextlib.suppress(OSError):
            theirs.shutdown(socket.SHUT_RDWR)  # our end reads EOF
        theirs.close()
        with contextlib.suppress(OSError, websocket.WebSocketException):
            ws.shutdown()

    def _receive(self, out: bytearray) -> bool:
        """One message from the API server; True when the exec has ended (its close frame)."""
        opcode, frame = self._ws.recv_data_frame()
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return True
        data = memoryview(frame.data)
        if data:
            channel, payload = data[0], data[1:]
            if channel == _STDOUT:
                out += payload
            elif channel == _STDERR:
                self.stderr_tail = (self.stderr_tail + bytes(payload))[-_STDERR_KEPT:]
            elif channel == _STATUS and len(payload) <= _STATUS_KEPT:
                with contextlib.suppress(ValueError):
                    self.status = json.loads(bytes(payload))
        return False
