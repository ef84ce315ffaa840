"""The pods/exec subresource over WebSocket for tests/kubernetes_fake.py, as the API server serves it to the
official client's WSClient: the checks it answers with a 400 before upgrading, the upgrade (subprotocol
v5.channel.k8s.io, else v4.channel.k8s.io), then binary frames whose first byte is the channel (0 stdin, 1 stdout,
2 stderr, 3 the exit Status, 4 resize; in v5 `[255, n]` closes channel n) bridged to a Docker exec in the pod's
container (tests/kubernetes_kubelet.py), and the exit Status on channel 3 before the close frame."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs

import docker
import docker.errors
from websockets.frames import Frame, Opcode
from websockets.protocol import Protocol, Side, State
from websockets.utils import accept_key

from tests.kubernetes_kubelet import Kubelet, container_name

V5, V4 = "v5.channel.k8s.io", "v4.channel.k8s.io"
STDIN, STDOUT, STDERR, ERROR, CLOSE = 0, 1, 2, 3, 255
STREAMS = ("stdin", "stdout", "stderr")
# How long a finished exec waits for the client to answer its close frame before dropping the connection.
CLOSE_TIMEOUT = 5.0

SendError = Callable[[int, dict[str, Any]], None]


def bad_request(message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": "BadRequest", "code": 400}


def exit_status(command: list[str], code: int) -> bytes:
    """What the API server sends on channel 3 when the command ends (Go's compact JSON of a metav1.Status)."""
    if code == 0:
        status: dict[str, Any] = {"metadata": {}, "status": "Success"}
    else:
        message = (f"command terminated with non-zero exit code: error executing command [{' '.join(command)}], "
                   f"exit code {code}")
        status = {"metadata": {}, "status": "Failure", "message": message, "reason": "NonZeroExitCode",
                  "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}
    return json.dumps(status, separators=(",", ":")).encode()


def serve_exec(handler: BaseHTTPRequestHandler, send_error: SendError, kubelet: Kubelet | None,
               pod: dict[str, Any], query: str) -> None:
    """Answer one exec request on `pod` (its status as last reported): a refusal, or the whole websocket session."""
    params = parse_qs(query)

    def flag(name: str) -> bool:
        return (params.get(name) or ["false"])[-1].lower() in ("true", "1")

    names, name = [spec["name"] for spec in pod["spec"]["containers"]], pod["metadata"]["name"]
    container = (params.get("container") or [""])[-1] or (names[0] if len(names) == 1 else "")
    command, phase = params.get("command") or [], pod["status"].get("phase")
    offered = [each.strip() for each in (handler.headers.get("Sec-WebSocket-Protocol") or "").split(",")]
    chosen = next((each for each in (V5, V4) if each in offered), None)
    problem = (
        f"a container name must be specified for pod {name}, choose one of: [{' '.join(names)}]" if not container
        else f"container {container} is not valid for pod {name}" if container not in names
        else f"cannot exec into a container in a completed pod; current phase is {phase}"
        if phase in ("Succeeded", "Failed")
        else "you must specify at least one command for the container" if not command
        else "you must specify at least 1 of stdin, stdout, stderr" if not any(map(flag, STREAMS))
        else f'unable to upgrade connection: container not found ("{container}")' if kubelet is None
        else "Upgrade request required" if (handler.headers.get("Upgrade") or "").lower() != "websocket"
        else f"unable to upgrade connection: none of the subprotocols {offered} is {V5} or {V4}" if not chosen
        else None)
    if problem or kubelet is None or chosen is None:
        return send_error(400, bad_request(problem or "unreachable"))
    stdin, tty = flag("stdin"), flag("tty")
    try:  # Docker refuses an exec in a container that is not running (or gone): the kubelet's "not found"
        exec_id = kubelet.api.exec_create(container_name(name, container), command, stdin=stdin, stdout=flag("stdout"),
                                          stderr=flag("stderr"), tty=tty)["Id"]
        attached = kubelet.api.exec_start(exec_id, socket=True, tty=tty)
    except docker.errors.APIError:
        return send_error(400, bad_request(f'unable to upgrade connection: container not found ("{container}")'))
    handler.close_connection = True
    handler.wfile.write((f"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         f"Sec-WebSocket-Accept: {accept_key(handler.headers['Sec-WebSocket-Key'])}\r\n"
                         f"Sec-WebSocket-Protocol: {chosen}\r\n\r\n").encode())
    bridge = Bridge(handler.connection, handler.rfile, kubelet.api, exec_id, attached, command=command,
                    v5=chosen == V5, stdin=stdin, tty=tty)
    # The kubelet's "connected" signal: an empty frame on the lowest channel it writes.
    bridge.send([(STDOUT if flag("stdout") else STDERR if flag("stderr") else ERROR, b"")])
    bridge.run()


class Bridge:
    """One exec session: this (the handler's) thread carries the process's output to the client, a second one the
    client's frames to the process. Two locks: the protocol's state is only touched under `_state`, and bytes it
    produced go out in order under `_sending`, which a reader never waits for unless it has a reply to send (so
    a client writing stdin while not reading its stdout cannot wedge both directions)."""

    def __init__(self, client: socket.socket, rfile: Any, api: docker.APIClient, exec_id: str, attached: Any, *,
                 command: list[str], v5: bool, stdin: bool, tty: bool) -> None:
        self.client, self.rfile, self.api, self.exec_id, self.attached = client, rfile, api, exec_id, attached
        self.command, self.v5, self.stdin_open, self.tty = command, v5, stdin, tty
        # docker-py hands the upgraded connection's SocketIO (a Unix socket) or the socket itself.
        self.process: socket.socket = getattr(attached, "_sock", attached)
        self.process.settimeout(None)  # docker-py's request timeout would end an idle, long-lived stream
        with contextlib.suppress(OSError):  # small interactive frames go at once, as Go's server sends them
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.ws = Protocol(Side.SERVER, state=State.OPEN, max_size=None)
        self._state, self._sending = threading.Lock(), threading.Lock()
        self._channel = STDIN  # of a fragmented message's continuation frames

    def run(self) -> None:
        reader = threading.Thread(target=self._from_client, daemon=True, name=f"exec-{self.exec_id[:12]}")
        reader.start()
        try:
            self._to_client()
            reader.join(CLOSE_TIMEOUT)
        finally:
            with contextlib.suppress(OSError):
                self.client.shutdown(socket.SHUT_RDWR)  # a client that never answered: its reader returns
            reader.join(CLOSE_TIMEOUT)
            # The response that read the upgrade holds the socket too: it goes first (after its file, an error).
            for closable in (getattr(self.attached, "_response", None), self.process, self.attached):
                with contextlib.suppress(OSError, ValueError, AttributeError):
                    if closable is not None:
                        closable.close()

    # ---- to the client --------------------------------------------------------------------------------------

    def send(self, frames: list[tuple[int, bytes]]) -> bool:
        """Send one binary message per (channel, data); False once the websocket is closing or broken."""
        with self._sending:
            with self._state:
                if self.ws.state is not State.OPEN:
                    return False
                for channel, data in frames:
                    self.ws.send_binary(bytes([channel]) + data)
                out = self.ws.data_to_send()
            return self._write(out)

    def _flush(self) -> None:
        with self._sending:
            with self._state:
                out = self.ws.data_to_send()
            self._write(out)

    def _write(self, out: list[bytes]) -> bool:
        try:
            for chunk in out:
                if chunk:
                    self.client.sendall(chunk)
                else:  # the protocol's end of stream: a server closes the TCP connection first
                    self.client.shutdown(socket.SHUT_WR)
        except OSError:
            return False
        return True

    def _to_client(self) -> None:
        pending = bytearray()
        while True:
            try:
                data = self.process.recv(1 << 16)
            except OSError:
                data = b""
            if not data:
                break
            if self.tty:
                frames = [(STDOUT, data)]
            else:
                pending += data
                frames = demultiplex(pending)
            if frames and not self.send(frames):
                return
        if self.send([(ERROR, exit_status(self.command, self._exit_code()))]):
            with self._sending:
                with self._state:
                    self.ws.send_close(1000)
                    out = self.ws.data_to_send()
                self._write(out)

    def _exit_code(self) -> int:
        """The exec's exit code; Docker may take a moment to notice the end of a process whose output ended."""
        deadline = time.monotonic() + 5
        while True:
            try:
                info = self.api.exec_inspect(self.exec_id)
            except docker.errors.APIError:
                return 137  # the container went with its processes
            if not info["Running"] or time.monotonic() > deadline:
                code = info["ExitCode"]
                return 137 if code is None or code < 0 else int(code)
            time.sleep(0.002)

    # ---- from the client ------------------------------------------------------------------------------------

    def _from_client(self) -> None:
        while True:
            try:
                data = self.rfile.read1(1 << 16)
            except (OSError, ValueError):
                data = b""
            with self._state:
                if data:
                    self.ws.receive_data(data)
                else:
                    self.ws.receive_eof()
                events = self.ws.events_received()
                reply = bool(self.ws.writes)  # a pong, the close frame's echo, an EOF
                done = self.ws.close_rcvd is not None or self.ws.state is not State.OPEN
            if reply:
                self._flush()
            for frame in events:
                if isinstance(frame, Frame):
                    self._receive(frame.opcode, bytes(frame.data))
            if not data or done:
                break
        # The client is gone: the process's stdin ends, and its output has nowhere to go.
        with contextlib.suppress(OSError):
            self.process.shutdown(socket.SHUT_RDWR)

    def _receive(self, opcode: Opcode, data: bytes) -> None:
        if opcode in (Opcode.TEXT, Opcode.BINARY) and data:
            self._channel, data = data[0], data[1:]
        elif opcode is not Opcode.CONT:
            return
        if self._channel == STDIN and self.stdin_open and data:
            try:
                self.process.sendall(data)
            except OSError:
                self.stdin_open = False  # the process has ended; what it did not read is dropped
        elif self._channel == CLOSE and self.v5 and data[:1] == bytes([STDIN]) and self.stdin_open:
            self.stdin_open = False
            with contextlib.suppress(OSError):
                self.process.shutdown(socket.SHUT_WR)


def demultiplex(pending: bytearray) -> list[tuple[int, bytes]]:
    """Docker's multiplexed stream (an 8-byte header: stream 1 or 2, 3 zero bytes, a big-endian size) as
    (channel, data) pairs, consuming the complete frames of `pending`. Docker's stream numbers are the channels."""
    frames, at = [], 0
    while len(pending) - at >= 8:
        size = int.from_bytes(pending[at + 4:at + 8], "big")
        if len(pending) - at - 8 < size:
            break
        frames.append((pending[at], bytes(pending[at + 8:at + 8 + size])))
        at += 8 + size
    del pending[:at]
    return frames
