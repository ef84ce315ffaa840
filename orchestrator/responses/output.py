"""One response's output as the agent loop produces it: the items (`message`, `code_interpreter_call`,
`file_search_call`, `function_call`) and the stream events OpenAI sends for each, in OpenAI's order."""

from __future__ import annotations

import base64
import mimetypes
from collections.abc import Awaitable, Callable
from typing import Any

from orchestrator.agent.chat import ModelTurn, TextHook, ToolCall
from orchestrator.responses.markers import MarkerFilter
from orchestrator.services.container_files import ContainerFile, ContainerFileStore
from orchestrator.services.storage import FileStore
from orchestrator.tools.annotations import file_path_annotations
from orchestrator.tools.cells import Image, Item
from orchestrator.tools.citations import CitationStore
from orchestrator.tools.code_interpreter import CodeInterpreterResult
from orchestrator.tools.file_search import FileSearchResult
from orchestrator.tools.registry import SearchSettings, Tool, ToolContext, ToolProblem, ToolResources
from orchestrator.tools.steps import code_of
from retrieval.ids import new_id

SCOPE = "responses"
Emit = Callable[[dict[str, Any]], None]
ContainerId = Callable[[], Awaitable[str]]  # the response's container, started on first use


class ResponseOutput:
    """The agent loop's Listener for one response; `items` is its `output` so far."""

    def __init__(self, emit: Emit, tools: dict[str, Tool], context: ToolContext, citations: CitationStore,
                 files: FileStore, container_files: ContainerFileStore | None, container: ContainerId,
                 earlier_containers: list[str], max_tool_calls: int | None) -> None:
        self.items: list[dict[str, Any]] = []
        self._emit, self._tools, self._context, self._container = emit, tools, context, container
        self._citations, self._files, self._container_files = citations, files, container_files
        # The containers of the context and of this response, oldest first: where the answer's links may point.
        self._containers: dict[str, None] = dict.fromkeys(earlier_containers)
        self._calls_left = max_tool_calls
        self._message: dict[str, Any] | None = None
        self._filter = MarkerFilter()
        self._shown: list[str] = []  # the message's text as sent, markers taken out

    # ---- text ----------------------------------------------------------------------------------------------

    def turn_started(self) -> TextHook:
        self._message, self._filter, self._shown = None, MarkerFilter(), []
        return self._piece

    async def _piece(self, piece: str) -> None:
        if self._message is None:
            self._open_message()
        self._delta(self._filter.feed(piece))

    def _open_message(self) -> None:
        self._message = {"id": new_id("msg_", 24), "type": "message", "role": "assistant", "status": "in_progress",
                         "content": []}
        index = self._add(self._message)
        self._emit({"type": "response.content_part.added", "output_index": index, "item_id": self._message["id"],
                    "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": [],
                                                 "logprobs": []}})

    def _delta(self, text: str) -> None:
        self._shown.append(text)
        if text and self._message is not None:
            self._emit({"type": "response.output_text.delta", "output_index": len(self.items) - 1,
                        "item_id": self._message["id"], "content_index": 0, "delta": text, "logprobs": []})

    def turn_ended(self, turn: ModelTurn, cut_short: bool) -> None:
        if self._message is None and turn.text:
            self._open_message()  # a model that answered without streaming
            self._delta(self._filter.feed(turn.text))
        if self._message is None:
            return
        self._delta(self._filter.flush())
        text = "".join(self._shown)
        annotations = self._annotations(text)
        message, index = self._message, len(self.items) - 1
        ids = {"output_index": index, "item_id": message["id"], "content_index": 0}
        for number, annotation in enumerate(annotations):
            self._emit({"type": "response.output_text.annotation.added", **ids, "annotation_index": number,
                        "annotation": annotation})
        part = {"type": "output_text", "text": text, "annotations": annotations, "logprobs": []}
        self._emit({"type": "response.output_text.done", **ids, "text": text, "logprobs": []})
        self._emit({"type": "response.content_part.done", **ids, "part": part})
        message.update(status="incomplete" if cut_short else "completed", content=[part])
        self._emit({"type": "response.output_item.done", "output_index": index, "item": message})
        self._message = None

    def _annotations(self, text: str) -> list[dict[str, Any]]:
        """file_citation points for the markers the model kept (one that cites nothing is dropped),
        container_file_citation spans for the links to files the code wrote (a later container's file wins a path
        two containers share)."""
        annotations = []
        for marker in self._filter.markers:
            found, _ = self._citations.annotations(self._context.scope, self._context.key, marker.text)
            annotations += [{"type": "file_citation", "file_id": c.source.file_id, "filename": c.source.filename,
                             "index": marker.index} for c in found]
        records: dict[str, tuple[ContainerFile, str]] = {}
        store = self._container_files
        if store is not None:
            for container_id in self._containers:
                records.update((record.path, (record, container_id)) for record in store.all(container_id))
        by_id = {record.id: (record, container_id) for record, container_id in records.values()}
        for link in file_path_annotations(text, {path: record.id for path, (record, _) in records.items()}):
            record, container_id = by_id[link.file_id]
            annotations.append({"type": "container_file_citation", "container_id": container_id,
                                "file_id": record.id, "filename": record.path.rsplit("/", 1)[-1],
                                "start_index": link.start_index, "end_index": link.end_index})
        return sorted(annotations, key=lambda a: a.get("index", a.get("start_index", 0)))

    # ---- tools ---------------------------------------------------------------------------------------------

    async def run_tool(self, call: ToolCall, turn: ModelTurn) -> str:
        if self._calls_left is not None:
            if self._calls_left <= 0:
                return "Error: this response may make no more tool calls (max_tool_calls); answer with what you have."
            self._calls_left -= 1
        if call.name == "code_interpreter":
            return await self._code(call)
        return await self._search(call)

    async def _code(self, call: ToolCall) -> str:
        item: dict[str, Any] = {"id": new_id("ci_", 24), "type": "code_interpreter_call", "status": "in_progress",
                                "code": "", "container_id": await self._container(), "outputs": []}
        self._containers[item["container_id"]] = None
        index = self._add(item)
        ids = {"output_index": index, "item_id": item["id"]}
        self._emit({"type": "response.code_interpreter_call.in_progress", **ids})
        code = code_of(call.arguments)
        if code:
            self._emit({"type": "response.code_interpreter_call_code.delta", **ids, "delta": code})
        self._emit({"type": "response.code_interpreter_call_code.done", **ids, "code": code})
        self._emit({"type": "response.code_interpreter_call.interpreting", **ids})
        outcome = await self._tools["code_interpreter"].run(call, self._context)
        if isinstance(outcome, CodeInterpreterResult):
            item.update(status="completed", code=outcome.code,
                        outputs=[self._output(entry) for entry in outcome.run.items])
        else:
            item.update(status="failed", code=code, outputs=[{"type": "logs", "logs": outcome.output}])
        item["_model_output"] = outcome.output
        self._emit({"type": "response.code_interpreter_call.completed", **ids})
        self._emit({"type": "response.output_item.done", "output_index": index, "item": item})
        return str(outcome.output)

    def _output(self, entry: Item) -> dict[str, Any]:
        if isinstance(entry, Image):
            stored = self._files.get(entry.file_id)
            kind = mimetypes.guess_type(stored.filename)[0] or "image/png"
            data = base64.b64encode(self._files.blob_path(entry.file_id).read_bytes()).decode()
            return {"type": "image", "url": f"data:{kind};base64,{data}"}
        return {"type": "logs", "logs": entry.text}

    async def _search(self, call: ToolCall) -> str:
        item: dict[str, Any] = {"id": new_id("fs_", 24), "type": "file_search_call", "status": "in_progress",
                                "queries": [], "results": None}
        index = self._add(item)
        ids = {"output_index": index, "item_id": item["id"]}
        self._emit({"type": "response.file_search_call.in_progress", **ids})
        self._emit({"type": "response.file_search_call.searching", **ids})
        outcome = await self._tools["file_search"].run(call, self._context)
        if isinstance(outcome, FileSearchResult):
            item.update(status="completed", queries=[outcome.query], results=[
                {"file_id": hit.file_id, "filename": hit.filename, "score": round(hit.score, 6), "text": hit.text,
                 "attributes": dict(hit.attributes)} for hit in outcome.hits])
        else:
            assert isinstance(outcome, ToolProblem)
            item.update(status="failed", results=[])
        item["_model_output"] = outcome.output
        self._emit({"type": "response.file_search_call.completed", **ids})
        self._emit({"type": "response.output_item.done", "output_index": index, "item": item})
        return str(outcome.output)

    # ---- calls handed back ---------------------------------------------------------------------------------

    def functions(self, calls: list[ToolCall]) -> None:
        """The function calls that end the response: the client runs them and answers in its next request."""
        for call in calls:
            item = {"id": new_id("fc_", 24), "type": "function_call", "status": "in_progress", "call_id": call.id,
                    "name": call.name, "arguments": ""}
            index = self._add(item)
            ids = {"output_index": index, "item_id": item["id"]}
            self._emit({"type": "response.function_call_arguments.delta", **ids, "delta": call.arguments})
            self._emit({"type": "response.function_call_arguments.done", **ids, "name": call.name,
                        "arguments": call.arguments})
            item.update(status="completed", arguments=call.arguments)
            self._emit({"type": "response.output_item.done", "output_index": index, "item": item})

    def _add(self, item: dict[str, Any]) -> int:
        self.items.append(item)
        self._emit({"type": "response.output_item.added", "output_index": len(self.items) - 1, "item": dict(item)})
        return len(self.items) - 1


def context_for(key: str, project: str, file_search: dict[str, Any] | None) -> ToolContext:
    """Whose calls these are: the response chain's key (its conversation or first response) for citation
    markers, and the file_search tool's stores and settings."""
    search = file_search or {}
    ranking = search.get("ranking_options") or {}
    return ToolContext(SCOPE, key, project, ToolResources([], list(search.get("vector_store_ids") or [])),
                       search=SearchSettings(search.get("max_num_results"), ranking.get("score_threshold"),
                                             search.get("filters")))


