"""Code interpreter runs: one cell on a sandbox, with every displayed image stored as a Files-API file.

This is what both `POST /v1/containers/{id}/execute` and `POST /v1/tool_calls` call. The engine reports images
as bytes and files under /mnt/data as artifacts; here images become `assistants_output` files, in the order the
kernel displayed them, and adjacent text becomes one `logs` item as in an Assistants run step. Images count
against the sandbox's export budget, and at most `max_images` of one cell are kept.
"""

from __future__ import annotations

import asyncio

from orchestrator.metrics import record_execution
from orchestrator.sandbox import Execution, ImageOutput, SandboxManager
from orchestrator.sandbox.models import Output
from orchestrator.sandbox.outputs import OutputHook
from orchestrator.services.exports import Exports
from orchestrator.services.project_sandboxes import ProjectSandboxes
from orchestrator.tools.cells import CellRun, Image, Item, ItemHook, Logs, merge_logs

_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg"}


class Interpreter:
    def __init__(self, manager: SandboxManager, sandboxes: ProjectSandboxes, exports: Exports, *,
                 max_images: int) -> None:
        self.manager = manager
        self._sandboxes = sandboxes
        self._exports = exports
        self._max_images = max_images

    async def execute(self, sandbox_id: str, code: str, on_output: OutputHook,
                      timeout: float | None = None) -> Execution:
        """Run `code` as one cell, its raw outputs to `on_output` (an expired sandbox is woken within its
        project's limit first)."""
        await self._sandboxes.wake(sandbox_id)
        execution = await self.manager.execute(sandbox_id, code, timeout, on_output=on_output)
        record_execution(execution)
        return execution

    async def run(self, sandbox_id: str, code: str, timeout: float | None = None,
                  on_item: ItemHook | None = None) -> CellRun:
        """Execute `code`; `on_item` sees every output as it arrives (for streaming)."""
        items: list[Item] = []
        images = 0

        async def on_output(output: Output) -> None:
            nonlocal images
            if isinstance(output, ImageOutput):
                images += 1
                if images > self._max_images:
                    return
            item = await self._item(sandbox_id, output, len(items) + 1)
            items.append(item)
            if on_item is not None:
                await on_item(item)

        execution = await self.execute(sandbox_id, code, on_output, timeout)
        if images > self._max_images:
            items.append(Logs(f"[{images - self._max_images} more images were displayed but not kept: at most "
                              f"{self._max_images} are kept per execution]\n"))
        return CellRun(execution, merge_logs(items))

    async def _item(self, sandbox_id: str, output: Output, number: int) -> Item:
        if isinstance(output, ImageOutput):
            name = f"image-{number}.{_EXTENSIONS.get(output.mime_type, 'bin')}"
            exported = await asyncio.to_thread(self._exports.store, sandbox_id, [output.data], name, len(output.data))
            if exported.file_id is None:
                return Logs(f"[image not kept. {exported.error}]\n")
            return Image(exported.file_id)
        return Logs(output.text)
