"""From kernel messages to a cell's outputs: parsing iopub messages and capping what a cell may keep.

Every message comes from a kernel that runs hostile code, so nothing here trusts its shape: a message that does
not parse is dropped, never raised to the caller.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from orchestrator.sandbox.models import ExecutionError, ImageOutput, Output, TextOutput

OutputHook = Callable[[Output], Awaitable[None]]

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_IMAGE_TYPES = ("image/png", "image/jpeg")


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def _text(value: Any) -> str:
    """A kernel's string as valid Unicode: JSON from the kernel may carry lone surrogates (a hostile kernel can
    send any escape), which would make every later encoding of the output fail."""
    return str(value).encode("utf-8", "replace").decode("utf-8")


@dataclass(frozen=True)
class Message:
    """The parts of a kernel message the engine reads."""

    parent_id: str | None
    kind: str
    content: dict[str, Any]


def read_message(msg: Any) -> Message | None:
    """The message's parent id, type and content; None if it is not shaped like a Jupyter message."""
    try:
        parent = msg["parent_header"]
        content = msg["content"]
        kind = msg["header"]["msg_type"]
        parent_id = parent.get("msg_id") if isinstance(parent, dict) else None
    except (KeyError, TypeError, AttributeError):
        return None
    if not isinstance(content, dict) or not isinstance(kind, str):
        return None
    return Message(parent_id if isinstance(parent_id, str) else None, kind, content)


def outputs_of(message: Message) -> tuple[list[Output], ExecutionError | None]:
    """The outputs an iopub message carries, and the error it reports; ([], None) for anything malformed."""
    try:
        return _outputs_of(message.kind, message.content)
    except (KeyError, TypeError, AttributeError, ValueError, binascii.Error):
        return [], None


def _outputs_of(kind: str, content: dict[str, Any]) -> tuple[list[Output], ExecutionError | None]:
    if kind == "stream":
        stream: Literal["stdout", "stderr"] = "stderr" if content.get("name") == "stderr" else "stdout"
        return [TextOutput(stream, _text(content.get("text", "")))], None
    if kind in ("execute_result", "display_data"):
        data = content.get("data", {})
        for mime in _IMAGE_TYPES:
            if mime in data:
                return [ImageOutput(mime, base64.b64decode(data[mime], validate=False))], None
        if "text/plain" in data:
            return [TextOutput("result", _text(data["text/plain"]) + "\n")], None
        return [], None
    if kind == "error":
        traceback = tuple(strip_ansi(_text(line)) for line in content.get("traceback", []))
        error = ExecutionError(_text(content.get("ename", "Error")), _text(content.get("evalue", "")), traceback)
        return [TextOutput("error", "\n".join(traceback) + "\n")], error
    return [], None


class OutputCollector:
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

    async def add_message(self, message: Message) -> None:
        outputs, error = outputs_of(message)
        for output in outputs:
            await self.add(output)
        self.error = error or self.error

    async def finish(self) -> None:
        if self.truncated_bytes:
            marker = f"\n[output truncated: {self.truncated_bytes} more bytes were not kept]\n"
            await self.add(TextOutput("notice", marker))
