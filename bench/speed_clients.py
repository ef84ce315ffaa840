"""The clients bench/speed.py times, each as lean as its wire allows: http.client to Toolshed, jupyter_client to a
plain host kernel (the floor), and a websocket to Jupyter Kernel Gateway (in its own venv). Every socket has
TCP_NODELAY, and TCP_QUICKACK re-armed per request and per frame read where the OS has it."""

from __future__ import annotations

import json
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from http.client import HTTPConnection, HTTPException
from pathlib import Path

import httpx
from jupyter_client.manager import KernelManager
from websockets.exceptions import WebSocketException
from websockets.sync.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parents[1]
CELL = "x = 1 + 1\nprint(x)"
BROKEN = (OSError, HTTPException, ValueError, KeyError, WebSocketException, RuntimeError)


def quick(sock: socket.socket) -> None:
    """No Nagle, and (Linux) no delayed ACK for what comes next: QUICKACK is not sticky, so it is set per request."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if hasattr(socket, "TCP_QUICKACK"):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)


def guarded(fn: Callable[[], bool]) -> Callable[[], bool]:
    """`fn`, with a broken connection or answer counted as a failed run (Samples counts AssertionError)."""
    def call() -> bool:
        try:
            return fn()
        except BROKEN as exc:
            raise AssertionError(repr(exc)) from exc
    return call


class Lean(HTTPConnection):
    """http.client with TCP_NODELAY and QUICKACK: a client that costs little, so the figure is the server's."""

    def connect(self) -> None:
        super().connect()
        quick(self.sock)

    def post(self, path: str, body: dict) -> tuple[int, dict]:
        if self.sock is not None:
            quick(self.sock)
        try:
            self.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
            answer = self.getresponse()
            return answer.status, json.loads(answer.read())
        except BROKEN:
            self.close()  # the next request reconnects
            raise


class Floor:
    """A plain ipykernel on the host, driven with jupyter_client: what running a cell costs with nothing around it."""

    def __enter__(self) -> Floor:
        self.manager = KernelManager(kernel_name="python3")
        self.manager.start_kernel()
        self.client = self.manager.blocking_client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=60)
        return self

    def run(self) -> bool:
        text: list[str] = []
        hook = lambda msg: text.append(msg["content"].get("text", ""))  # noqa: E731
        reply = self.client.execute_interactive(CELL, timeout=30, output_hook=hook)
        return reply["content"]["status"] == "ok" and "".join(text) == "2\n"

    def __exit__(self, *exc: object) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


class KernelGateway:
    """Jupyter Kernel Gateway in its own venv, one kernel, driven over its websocket like its own clients do."""

    def __enter__(self) -> KernelGateway:
        env = subprocess.run(["bash", str(ROOT / "bench" / "kernel_gateway_env.sh")], check=True,
                             capture_output=True, text=True).stdout.strip().splitlines()[-1]
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.log = tempfile.NamedTemporaryFile(prefix="kernel-gateway-", suffix=".log", delete=False)
        self.process = subprocess.Popen([f"{env}/bin/jupyter-kernelgateway", "--KernelGatewayApp.ip=127.0.0.1",
                                         f"--KernelGatewayApp.port={self.port}"], stdout=self.log, stderr=self.log)
        base = f"http://127.0.0.1:{self.port}"
        for _ in range(300):
            try:
                kernel = httpx.post(f"{base}/api/kernels", json={"name": "python3"}, timeout=30).json()["id"]
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            raise RuntimeError(f"the kernel gateway did not start; see {self.log.name}")
        sock = socket.create_connection(("127.0.0.1", self.port))
        quick(sock)
        self.ws: ClientConnection = connect(f"ws://127.0.0.1:{self.port}/api/kernels/{kernel}/channels", sock=sock,
                                            compression=None, max_size=None)
        self.session = uuid.uuid4().hex
        return self

    def run(self) -> bool:
        msg_id = uuid.uuid4().hex
        header = {"msg_id": msg_id, "msg_type": "execute_request", "session": self.session, "username": "bench",
                  "date": "", "version": "5.3"}
        quick(self.ws.socket)
        self.ws.send(json.dumps({"header": header, "parent_header": {}, "metadata": {}, "channel": "shell",
                                 "buffers": [], "content": {"code": CELL, "silent": False, "store_history": True,
                                                            "user_expressions": {}, "allow_stdin": False}}))
        text, replied, idle, status = [], False, False, ""
        while not (replied and idle):  # like execute_interactive: the reply and the kernel's "idle" both seen
            msg = json.loads(self.ws.recv(timeout=30))
            quick(self.ws.socket)  # each frame read re-arms QUICKACK, so the next small one is ACKed at once
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = msg["msg_type"]
            text.append(msg["content"].get("text", "") if kind == "stream" else "")
            replied, status = (True, msg["content"]["status"]) if kind == "execute_reply" else (replied, status)
            idle = idle or (kind == "status" and msg["content"]["execution_state"] == "idle")
        return status == "ok" and "".join(text) == "2\n"

    def __exit__(self, *exc: object) -> None:
        self.ws.close()
        self.process.terminate()
        self.process.wait(timeout=30)
