"""One websocket on a kernel's `channels`, in Jupyter's legacy JSON framing (no subprotocol): requests come in as
messages with a `channel` (default `shell`), and the kernel's answers go out the same way.

The kernel behind it is a Toolshed sandbox, driven through the engine rather than by relaying its ZeroMQ sockets,
so a cell gets the engine's limits, timeouts, output caps and file collection: `execute_request` becomes one
execution whose outputs are sent as iopub `stream`, `display_data`, `execute_result` and `error` messages between
`busy` and `idle`, then an `execute_reply`. `kernel_info_request`, `interrupt_request` (control),
`comm_info_request` and `shutdown_request` are answered; any other request gets an error reply naming it.

The key that opened the socket is checked again on every message and before every cell, so a revoked key runs
nothing more (the socket is closed). Cells wait in a bounded queue: past it an `execute_request` is refused at
once with an error reply, instead of holding up to 16 MiB each in the server's memory without end.
"""

from __future__ import annotations

import asyncio
import base64
import json
import platform
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import WebSocket, WebSocketDisconnect
from starlette.websockets import WebSocketState

from orchestrator.errors import ServiceError
from orchestrator.sandbox.errors import SandboxError, SandboxNotFound
from orchestrator.sandbox.models import ImageOutput, Output, TextOutput
from orchestrator.services.interpreter import Interpreter

PROTOCOL_VERSION = "5.3"
KERNEL_INFO = {
    "status": "ok", "protocol_version": PROTOCOL_VERSION, "implementation": "toolshed",
    "implementation_version": "1", "banner": "Python in a Toolshed sandbox (no network; files in /mnt/data)",
    "language_info": {"name": "python", "version": platform.python_version(), "mimetype": "text/x-python",
                      "file_extension": ".py", "pygments_lexer": "ipython3", "codemirror_mode": "ipython",
                      "nbconvert_exporter": "python"},
    "help_links": [],
}


def _message(msg_type: str, channel: str, content: dict[str, Any], parent: dict[str, Any]) -> dict[str, Any]:
    header = {"msg_id": uuid.uuid4().hex, "msg_type": msg_type, "username": "toolshed",
              "session": parent.get("session", ""), "date": datetime.now(UTC).isoformat(),
              "version": PROTOCOL_VERSION}
    return {"header": header, "msg_id": header["msg_id"], "msg_type": msg_type, "parent_header": parent,
            "metadata": {}, "content": content, "channel": channel, "buffers": []}


class KernelChannels:
    """Serves one websocket until the client goes; cells run one after another, an interrupt at any time."""

    def __init__(self, websocket: WebSocket, interpreter: Interpreter, kernel_id: str, *,
                 allowed: Callable[[], bool], max_queued: int) -> None:
        """`allowed` says whether the key that opened the socket still reaches the kernel."""
        self._ws, self._interpreter, self._kernel_id = websocket, interpreter, kernel_id
        self._allowed = allowed
        self._send_lock = asyncio.Lock()
        self._cells: asyncio.Queue[dict[str, Any]] = asyncio.Queue(max_queued)
        self._count = 0

    async def serve(self) -> None:
        runner = asyncio.create_task(self._run_cells())
        try:
            while True:
                try:
                    request = json.loads(await self._ws.receive_text())
                except (json.JSONDecodeError, KeyError):  # not JSON text: Jupyter servers drop such frames too
                    continue
                if not self._allowed():
                    await self._close_revoked()
                    return
                if not isinstance(request, dict) or not isinstance(request.get("header"), dict):
                    continue  # not a Jupyter message: nothing to answer it on
                await self._dispatch(request)
        except WebSocketDisconnect:
            pass
        finally:
            runner.cancel()

    async def _close_revoked(self) -> None:
        async with self._send_lock:
            if self._ws.application_state != WebSocketState.DISCONNECTED:  # the other task may have closed it
                await self._ws.close(code=1008, reason="the token is no longer valid")

    async def _send(self, msg_type: str, channel: str, content: dict[str, Any], parent: dict[str, Any]) -> None:
        async with self._send_lock:
            await self._ws.send_json(_message(msg_type, channel, content, parent))

    async def _status(self, state: str, parent: dict[str, Any]) -> None:
        await self._send("status", "iopub", {"execution_state": state}, parent)

    async def _dispatch(self, request: dict[str, Any]) -> None:
        parent = request["header"]
        msg_type = str(parent.get("msg_type", ""))
        channel = request.get("channel") or "shell"
        if msg_type == "execute_request":
            try:
                self._cells.put_nowait(request)
            except asyncio.QueueFull:
                await self._status("busy", parent)
                await self._reply_error(parent, self._count, "QueueFull", (
                    f"{self._cells.maxsize} cells are already waiting on this kernel; this one was not run. "
                    "Send it again once they are done."))
        elif msg_type == "kernel_info_request":
            await self._status("busy", parent)
            await self._send("kernel_info_reply", channel, KERNEL_INFO, parent)
            await self._status("idle", parent)
        elif msg_type == "interrupt_request":
            try:
                await self._interpreter.manager.interrupt(self._kernel_id)
            except SandboxNotFound as exc:
                await self._send("interrupt_reply", channel, {"status": "error", "ename": "SandboxNotFound",
                                                              "evalue": str(exc), "traceback": []}, parent)
                return
            await self._send("interrupt_reply", channel, {"status": "ok"}, parent)
        elif msg_type == "comm_info_request":
            await self._send("comm_info_reply", channel, {"status": "ok", "comms": {}}, parent)
        elif msg_type == "shutdown_request":
            content = request.get("content") or {}
            await self._send("shutdown_reply", channel, {"status": "ok", "restart": bool(content.get("restart"))},
                             parent)
        elif msg_type.endswith("_request"):
            await self._send(msg_type.removesuffix("_request") + "_reply", channel, {
                "status": "error", "ename": "UnsupportedRequest",
                "evalue": f"This kernel does not answer {msg_type}.", "traceback": []}, parent)

    async def _run_cells(self) -> None:
        while True:
            request = await self._cells.get()
            if not self._allowed():  # revoked while the cell waited: it never runs
                await self._reply_error(request["header"], self._count, "Forbidden", "The token is no longer valid.")
                await self._close_revoked()
                return
            try:
                await self._execute(request)
            except (SandboxError, ServiceError) as exc:  # the kernel was deleted, the engine is down, a limit
                # Every execute_request gets its reply and its idle, or the client waits for ever.
                await self._reply_error(request["header"], self._count, type(exc).__name__, str(exc))

    async def _execute(self, request: dict[str, Any]) -> None:
        parent, content = request["header"], request.get("content") or {}
        code = content.get("code")
        self._count += 1
        count = self._count
        await self._status("busy", parent)
        if not isinstance(code, str):
            await self._reply_error(parent, count, "TypeError", "execute_request content.code must be a string.")
            return
        await self._send("execute_input", "iopub", {"code": code, "execution_count": count}, parent)

        async def on_output(output: Output) -> None:
            await self._output(output, parent, count)

        run = await self._interpreter.execute(self._kernel_id, code, on_output)
        error = run.error
        if error is not None:
            await self._send("error", "iopub", {"ename": error.name, "evalue": error.value,
                                                "traceback": list(error.traceback) or [f"{error.name}: {error.value}"]},
                             parent)
            await self._reply_error(parent, count, error.name, error.value, list(error.traceback))
            return
        await self._send("execute_reply", "shell", {"status": "ok", "execution_count": count,
                                                    "user_expressions": {}, "payload": []}, parent)
        await self._status("idle", parent)

    async def _reply_error(self, parent: dict[str, Any], count: int, name: str, value: str,
                           traceback: list[str] | None = None) -> None:
        await self._send("execute_reply", "shell", {"status": "error", "execution_count": count, "ename": name,
                                                    "evalue": value, "traceback": traceback or []}, parent)
        await self._status("idle", parent)

    async def _output(self, output: Output, parent: dict[str, Any], count: int) -> None:
        if isinstance(output, ImageOutput):
            data = {output.mime_type: base64.b64encode(output.data).decode(), "text/plain": "<Figure>"}
            await self._send("display_data", "iopub", {"data": data, "metadata": {}, "transient": {}}, parent)
        elif isinstance(output, TextOutput) and output.kind == "result":
            await self._send("execute_result", "iopub", {"data": {"text/plain": output.text}, "metadata": {},
                                                         "execution_count": count}, parent)
        elif isinstance(output, TextOutput) and output.kind != "error":  # the error message carries tracebacks
            name = "stdout" if output.kind == "stdout" else "stderr"
            await self._send("stream", "iopub", {"name": name, "text": output.text}, parent)
