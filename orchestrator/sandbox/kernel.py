"""Talking to one Jupyter kernel over its connection info: readiness, execute-until-idle, interrupt.

The only module that imports jupyter_client. It knows nothing about Docker: the manager passes an `is_alive`
probe so a kernel that dies mid-cell is noticed without waiting for the deadline.
"""

from __future__ import annotations

import base64
import queue
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import zmq.asyncio
from jupyter_client.asynchronous import AsyncKernelClient

from orchestrator.sandbox.models import ExecutionError, ImageOutput, Output, TextOutput

OutputHook = Callable[[Output], Awaitable[None]]
AliveProbe = Callable[[], Awaitable[bool]]

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_IMAGE_TYPES = ("image/png", "image/jpeg")
# How often a silent kernel is checked for death while a cell runs.
_ALIVE_CHECK_INTERVAL = 0.5


class KernelNotReady(Exception):
    """The kernel did not answer kernel_info before the deadline."""


@dataclass(frozen=True)
class CellResult:
    """How a cell ended, as seen from the kernel protocol."""

    outcome: Literal["ok", "error", "timeout", "stuck", "died"]
    outputs: tuple[Output, ...]
    error: ExecutionError | None
    truncated_bytes: int


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


class _OutputCollector:
    """Accumulates a cell's outputs, capping text so a runaway print cannot exhaust the server."""

    def __init__(self, max_text_bytes: int, hook: OutputHook | None) -> None:
        self.outputs: list[Output] = []
        self.error: ExecutionError | None = None
        self.truncated_bytes = 0
        self._budget = max_text_bytes
        self._hook = hook

    async def add(self, output: Output) -> None:
        if isinstance(output, TextOutput) and output.kind != "notice":
            size = len(output.text.encode())
            if size > self._budget:
                kept = output.text.encode()[: self._budget].decode(errors="ignore")
                self.truncated_bytes += size - len(kept.encode())
                self._budget = 0
                if not kept:
                    return
                output = TextOutput(output.kind, kept)
            else:
                self._budget -= size
        self.outputs.append(output)
        if self._hook is not None:
            await self._hook(output)

    async def finish(self) -> None:
        if self.truncated_bytes:
            marker = f"\n[output truncated: {self.truncated_bytes} more bytes were not kept]\n"
            await self.add(TextOutput("notice", marker))


def _outputs_from_message(msg: dict[str, Any]) -> tuple[list[Output], ExecutionError | None]:
    kind = msg["header"]["msg_type"]
    content = msg["content"]
    if kind == "stream":
        return [TextOutput("stderr" if content.get("name") == "stderr" else "stdout", content.get("text", ""))], None
    if kind in ("execute_result", "display_data"):
        data = content.get("data", {})
        for mime in _IMAGE_TYPES:
            if mime in data:
                return [ImageOutput(mime, base64.b64decode(data[mime]))], None
        if "text/plain" in data:
            return [TextOutput("result", data["text/plain"] + "\n")], None
        return [], None
    if kind == "error":
        traceback = tuple(strip_ansi(line) for line in content.get("traceback", []))
        error = ExecutionError(content.get("ename", "Error"), content.get("evalue", ""), traceback)
        return [TextOutput("error", "\n".join(traceback) + "\n")], error
    return [], None


class KernelSession:
    """A client for one kernel, built from its connection info (ports, key, transport)."""

    def __init__(self, connection_info: dict[str, Any], context: zmq.asyncio.Context) -> None:
        self._client = AsyncKernelClient(context=context)
        self._client.load_connection_info(connection_info)
        self._client.start_channels(shell=True, iopub=True, stdin=False, hb=False, control=True)

    def close(self) -> None:
        self._client.stop_channels()

    async def wait_ready(self, timeout: float) -> None:
        """Block until the kernel answers kernel_info and iopub delivers; raise KernelNotReady at the deadline.

        Heartbeats falsely report death under load, so readiness is probed with real requests.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg_id = self._client.kernel_info()
            if await self._await_reply(msg_id, min(1.0, deadline - time.monotonic())):
                # kernel_info makes the kernel publish busy/idle; seeing one proves our iopub subscription is live.
                if await self._drain_iopub(min(0.5, max(deadline - time.monotonic(), 0.01))):
                    return
        raise KernelNotReady(f"kernel did not become ready within {timeout:.0f}s")

    async def _await_reply(self, msg_id: str, timeout: float) -> bool:
        end = time.monotonic() + max(timeout, 0.01)
        while (left := end - time.monotonic()) > 0:
            try:
                reply = await self._client.get_shell_msg(timeout=left)
            except queue.Empty:
                return False
            if reply["parent_header"].get("msg_id") == msg_id:
                return True
        return False

    async def _drain_iopub(self, timeout: float) -> bool:
        got_any = False
        while True:
            try:
                await self._client.get_iopub_msg(timeout=timeout if not got_any else 0.05)
            except queue.Empty:
                return got_any
            got_any = True

    async def interrupt(self) -> None:
        """Ask the kernel to raise KeyboardInterrupt in the running cell (message-mode interrupt)."""
        msg = self._client.session.msg("interrupt_request", {})
        self._client.control_channel.send(msg)

    async def execute(
        self,
        code: str,
        timeout: float,
        *,
        interrupt_grace: float,
        max_text_bytes: int,
        on_output: OutputHook | None = None,
        is_alive: AliveProbe | None = None,
    ) -> CellResult:
        """Run `code`, collecting outputs until the kernel reports idle or dies.

        At `timeout` the cell is interrupted; outputs keep arriving for `interrupt_grace` more seconds. The
        outcome is "timeout" if the interrupt brought the kernel back to idle, "stuck" if it did not.
        """
        collector = _OutputCollector(max_text_bytes, on_output)
        msg_id = self._client.execute(code, allow_stdin=False, stop_on_error=True)
        outcome = await self._collect_until_idle(msg_id, time.monotonic() + timeout, collector, is_alive)
        if outcome == "timeout":
            await self.interrupt()
            after = await self._collect_until_idle(msg_id, time.monotonic() + interrupt_grace, collector, is_alive)
            outcome = {"ok": "timeout", "timeout": "stuck"}.get(after, after)
        await collector.finish()
        if outcome == "ok" and collector.error is not None:
            outcome = "error"
        return CellResult(outcome, tuple(collector.outputs), collector.error, collector.truncated_bytes)

    async def _collect_until_idle(
        self,
        msg_id: str,
        deadline: float,
        collector: _OutputCollector,
        is_alive: AliveProbe | None,
    ) -> Literal["ok", "timeout", "died"]:
        next_alive_check = time.monotonic() + _ALIVE_CHECK_INTERVAL
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = await self._client.get_iopub_msg(timeout=min(left, _ALIVE_CHECK_INTERVAL))
            except queue.Empty:
                msg = None
            if msg is not None and msg["parent_header"].get("msg_id") == msg_id:
                if msg["header"]["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                    return "ok"
                outputs, error = _outputs_from_message(msg)
                for output in outputs:
                    await collector.add(output)
                collector.error = error or collector.error
            if is_alive is not None and time.monotonic() >= next_alive_check:
                next_alive_check = time.monotonic() + _ALIVE_CHECK_INTERVAL
                if not await is_alive():
                    return "died"
        return "timeout"



def new_connection_info(ip_prefix: str) -> dict[str, Any]:
    """Fresh ipc connection info: a new HMAC key and new socket names for every kernel start.

    Rotating both means a request still queued for a dead kernel can never be delivered to its successor.
    """
    base = secrets.randbelow(1 << 20) * 8
    return {
        "transport": "ipc",
        "ip": ip_prefix,
        "shell_port": base + 1,
        "iopub_port": base + 2,
        "stdin_port": base + 3,
        "control_port": base + 4,
        "hb_port": base + 5,
        "key": secrets.token_hex(32),
        "signature_scheme": "hmac-sha256",
        "kernel_name": "python3",
    }


class KernelConnector:
    """Makes KernelSessions that share one ZMQ context (one IO thread for all sandboxes)."""

    def __init__(self) -> None:
        self._context = zmq.asyncio.Context()

    def connect(self, connection_info: dict[str, Any]) -> KernelSession:
        return KernelSession(connection_info, self._context)

    def close(self) -> None:
        # destroy, not term: term() blocks for as long as any session's sockets are still open.
        self._context.destroy(linger=0)
