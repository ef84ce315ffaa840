"""What the MCP tools do, over the same services as the OpenAI face: code runs through the code_interpreter tool in
a thread's sandbox (the tool-calls face's threads, so an MCP session and `/v1/tool_calls` can share one), files
are the sandbox's container files, and search is the vector stores' search, all within the caller's project."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from mcp.types import (
    BlobResourceContents,
    CallToolResult,
    ContentBlock,
    EmbeddedResource,
    ImageContent,
    ResourceLink,
    TextContent,
)

from orchestrator.services.bindings import TOOL_CALLS
from orchestrator.services.container import Services
from orchestrator.services.container_files import CONTAINER_DATA_DIR
from orchestrator.services.projects import Caller
from orchestrator.services.storage import media_type
from orchestrator.tools.cells import Image, ItemHook, Logs
from orchestrator.tools.code_interpreter import CodeInterpreterResult
from orchestrator.tools.registry import ToolCall, ToolContext, ToolProblem, ToolResources
from retrieval.sqlite import PageRequest

# Files larger than this are offered as a download link rather than inlined by read_file, and one call's images
# past this many bytes in all are links too: base64 in JSON costs several times the bytes in the server's memory.
MAX_INLINE_BYTES = 4 << 20


@dataclass(frozen=True)
class Session:
    """One MCP call's reach: its caller, its sandbox's thread name, and where its download links point."""

    caller: Caller
    thread: str
    base_url: str

    def file_link(self, file_id: str, name: str, size: int | None = None) -> ResourceLink:
        return ResourceLink(uri=f"{self.base_url}/v1/files/{file_id}/content", name=name,
                            mime_type=media_type(name), size=size)


def _read_at_most(chunks: Iterator[bytes], limit: int) -> bytes | None:
    """The bytes of `chunks` if they come to at most `limit`, else None (having read no more than one chunk
    past it); the file is closed either way."""
    got: list[bytes] = []
    size = 0
    try:
        for chunk in chunks:
            size += len(chunk)
            if size > limit:
                return None
            got.append(chunk)
    finally:
        close = getattr(chunks, "close", None)  # a generator: closing it closes the file
        if close is not None:
            close()
    return b"".join(got)


def text(body: str, *, error: bool = False) -> CallToolResult:
    return CallToolResult(content=[TextContent(text=body)], is_error=error)


class McpTools:
    def __init__(self, services: Callable[[], Services]) -> None:
        self._services = services

    async def _container(self, session: Session) -> str:
        bindings = self._services().require_sandboxes().bindings
        return await bindings.sandbox_for(TOOL_CALLS, session.caller.key(session.thread), [], session.caller.project)

    async def execute_code(self, session: Session, code: str, timeout: float | None,
                           on_output: ItemHook) -> CallToolResult:
        services = self._services()
        context = ToolContext(TOOL_CALLS, session.caller.key(session.thread), session.caller.project,
                              ToolResources(), on_output=on_output, timeout=timeout)
        outcome = await services.tools.call(ToolCall("mcp", "code_interpreter", json.dumps({"code": code})), context)
        if isinstance(outcome, ToolProblem):
            return text(outcome.message, error=True)
        assert isinstance(outcome, CodeInterpreterResult)
        execution = outcome.run.execution
        blocks: list[ContentBlock] = []
        logs = "".join(item.text for item in outcome.run.items if isinstance(item, Logs))
        if execution.error is not None and not execution.error.traceback:
            logs += f"{execution.error.name}: {execution.error.value}\n"
        blocks.append(TextContent(text=logs or "(no output)"))
        budget = MAX_INLINE_BYTES
        for item in outcome.run.items:
            if isinstance(item, Image) and services.owners.sees(session.caller, item.file_id):
                stored = services.files.get(item.file_id)
                if stored.bytes > budget:
                    blocks.append(session.file_link(item.file_id, stored.filename, stored.bytes))
                    continue
                budget -= stored.bytes
                data = services.files.blob_path(item.file_id).read_bytes()
                blocks.append(ImageContent(data=base64.b64encode(data).decode(), mime_type=media_type(stored.filename)))
        for artifact in execution.artifacts:
            if artifact.file_id is not None:  # named as under /mnt/data, the way read_file takes it
                name = artifact.path.removeprefix(f"{CONTAINER_DATA_DIR}/")
                blocks.append(session.file_link(artifact.file_id, name, artifact.bytes))
            else:
                blocks.append(TextContent(text=f"{artifact.path} was not delivered: {artifact.error}"))
        return CallToolResult(content=blocks, is_error=execution.status != "completed")

    async def upload_file(self, session: Session, filename: str, content: str, encoding: str) -> CallToolResult:
        try:
            data = base64.b64decode(content, validate=True) if encoding == "base64" else content.encode()
        except ValueError as exc:
            return text(f"content is not valid base64: {exc}", error=True)
        sandboxes = self._services().require_sandboxes()
        written = await sandboxes.container_files.upload(await self._container(session), filename, [data])
        return text(f"Wrote {written.sandbox_path} ({written.bytes} bytes).")

    async def list_files(self, session: Session) -> CallToolResult:
        sandboxes = self._services().require_sandboxes()
        files = sandboxes.container_files.store.all(await self._container(session))
        if not files:
            return text("/mnt/data holds no files yet.")
        return CallToolResult(content=[
            session.file_link(f.file_id, f.path, f.bytes) if f.file_id else
            TextContent(text=f"{f.sandbox_path} ({f.bytes} bytes)") for f in files])

    async def read_file(self, session: Session, path: str) -> CallToolResult:
        sandboxes = self._services().require_sandboxes()
        container = await self._container(session)
        wanted = path.removeprefix("/mnt/data/").lstrip("/")
        found = next((f for f in sandboxes.container_files.store.all(container) if f.path == wanted), None)
        if found is None:
            return text(f"No file /mnt/data/{wanted}; list_files shows what there is.", error=True)
        # The size seen at the last scan may be stale (a background thread can grow the file since): the bytes
        # are counted as they are read, and reading stops one past the limit.
        _, chunks = await sandboxes.container_files.open(container, found.id)
        data = await asyncio.to_thread(_read_at_most, chunks, MAX_INLINE_BYTES)
        if data is None:
            if found.file_id and found.bytes > MAX_INLINE_BYTES:  # the exported copy is this big one too
                return CallToolResult(content=[session.file_link(found.file_id, found.path, found.bytes)])
            return text(f"/mnt/data/{wanted} is larger than {MAX_INLINE_BYTES} bytes, too large to read here; "
                        "read it in parts with execute_code.", error=True)
        uri = f"file:///mnt/data/{found.path}"
        try:
            return text(data.decode())
        except UnicodeDecodeError:
            blob = BlobResourceContents(uri=uri, blob=base64.b64encode(data).decode(), mime_type=media_type(wanted))
            return CallToolResult(content=[EmbeddedResource(resource=blob)])

    def _project_stores(self, caller: Caller) -> list[str]:
        return [store.id for store in self._services().vector_stores.page(PageRequest(limit=100), caller.scope)[0]]

    async def file_search(self, session: Session, query: str, vector_store_ids: list[str] | None,
                          max_num_results: int) -> CallToolResult:
        unknown = [s for s in vector_store_ids or [] if not self._services().owners.sees(session.caller, s)]
        if unknown:
            return text(f"No vector store found with id '{unknown[0]}'.", error=True)
        stores = vector_store_ids or self._project_stores(session.caller)
        if not stores:
            return text("This project has no vector stores to search.")
        hits = await self._services().vector_stores.search(stores, query, k=max_num_results)
        if not hits:
            return text("No passage matched.")
        return text("\n\n".join(
            f"[{n}] {hit.filename} (file {hit.file_id}"
            f"{f', page {hit.page}' if hit.page is not None else ''}, score {hit.score:.3f})\n{hit.text}"
            for n, hit in enumerate(hits, 1)))

    async def search(self, session: Session, query: str) -> CallToolResult:
        """ChatGPT's connector shape: one text item holding {"results": [{id, title, url}]}, one per file."""
        stores = self._project_stores(session.caller)
        hits = await self._services().vector_stores.search(stores, query, k=20) if stores else []
        results: dict[str, dict[str, str]] = {}
        for hit in hits:
            results.setdefault(hit.file_id, {"id": hit.file_id, "title": hit.filename,
                                              "url": f"{session.base_url}/v1/files/{hit.file_id}/content"})
        return text(json.dumps({"results": list(results.values())[:10]}))

    async def fetch(self, session: Session, file_id: str) -> CallToolResult:
        """ChatGPT's connector shape: one text item holding {id, title, text, url, metadata}."""
        services = self._services()
        stores = [s for s in services.vector_stores.stores_with_file(file_id)
                  if services.owners.sees(session.caller, s)]
        if not stores or not services.owners.sees(session.caller, file_id):
            return text(f"No indexed file found with id '{file_id}'.", error=True)
        chunks = services.vector_stores.chunks(stores[0], file_id)
        document = {"id": file_id, "title": services.files.get(file_id).filename,
                    "text": "\n\n".join(c.chunk.text for c in chunks),
                    "url": f"{session.base_url}/v1/files/{file_id}/content",
                    "metadata": {"vector_store_id": stores[0], "chunks": len(chunks)}}
        return text(json.dumps(document))
