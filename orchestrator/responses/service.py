"""Responses: one request runs the whole hosted-tool loop (the agent loop of orchestrator/agent/) and ends
`completed` (a function call ends it too, handed back as a `function_call` item), `incomplete`, `failed` or, in
the background, `cancelled`. Every Response is saved before its events are sent; a stream sees them in order,
each numbered."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from orchestrator.agent.chat import ModelClient
from orchestrator.agent.loop import AgentRequest, Ending, run_agent
from orchestrator.errors import InvalidRequest
from orchestrator.responses.context import Context, ContextBuilder
from orchestrator.responses.output import ResponseOutput, context_for
from orchestrator.responses.shapes import (
    chat_format,
    chat_tool_choice,
    chat_tools,
    check_include,
    new_body,
    present,
    usage,
)
from orchestrator.responses.store import LIVE, ResponseStore
from orchestrator.responses.tools import ResponseTools
from orchestrator.services.projects import Caller
from retrieval.ids import new_id

log = logging.getLogger("toolshed.responses")
STOPPED = {"code": "server_error", "message": "The server stopped while this response was live."}
Event = dict[str, Any]


@dataclass(frozen=True)
class Limits:
    context_tokens: int = 16_384
    max_output_chars: int = 1_000_000


class Stream:
    """The events of one response, numbered from 0, to whoever watches it (a `stream: true` request)."""

    def __init__(self, include: frozenset[str]) -> None:
        self.include = include
        self.watchers: list[asyncio.Queue[Event | None]] = []
        self._next = 0

    def emit(self, event: Event) -> None:
        shown = {"type": event["type"], "sequence_number": self._next,
                 **{key: present(value, self.include) for key, value in event.items() if key != "type"}}
        self._next += 1
        for queue in self.watchers:
            queue.put_nowait(shown)

    def end(self) -> None:
        for queue in self.watchers:
            queue.put_nowait(None)


class Responses:
    def __init__(self, store: ResponseStore, model: ModelClient, tools: ResponseTools, context: ContextBuilder,
                 limits: Limits) -> None:
        self.store = store
        self._model, self._tools, self._context, self._limits = model, tools, context, limits
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._closing = False

    async def create(self, request: dict[str, Any], caller: Caller,
                     watcher: asyncio.Queue[Event | None] | None = None) -> dict[str, Any]:
        """Check the request, save the response, and run it: to the end (the final Response), or in the
        background (the queued Response at once). A `watcher` sees every event, then None."""
        include = check_include(request.get("include"))
        if request.get("background") and request.get("store") is False:
            raise InvalidRequest("background responses must be stored (store: true).", param="background")
        tools = chat_tools(request.get("tools") or [])
        choice, offered = chat_tool_choice(request.get("tool_choice"), tools)
        response_format = chat_format(request.get("text"))
        context = await self._context.build(request, caller)
        prepared = await self._tools.prepare(request.get("tools") or [], caller, context.items)
        response_id = new_id("resp_", 24)
        body = new_body(response_id, request, "queued" if request.get("background") else "in_progress")
        body["_key"] = context.key or response_id
        self.store.insert(body, context.own, caller.project)
        stream = Stream(include)
        if watcher is not None:
            stream.watchers.append(watcher)
        agent = AgentRequest(request["model"], offered, frozenset(prepared.hosted), {
            "temperature": request.get("temperature"), "top_p": request.get("top_p"), "tool_choice": choice,
            "response_format": response_format}, parallel_tool_calls=request.get("parallel_tool_calls", True),
            max_completion_tokens=request.get("max_output_tokens"), truncate=request.get("truncation") == "auto",
            context_tokens=self._limits.context_tokens, max_output_chars=self._limits.max_output_chars)
        task = asyncio.create_task(self._drive(body, context, agent, prepared, stream, caller))
        self._tasks[response_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(response_id, None))
        if request.get("background") or watcher is not None:
            return present(body, include)
        # A client that leaves does not stop the response (it is stored, and retrievable).
        await asyncio.shield(task)
        return present(body, include)  # _drive brought it to its end in place

    async def _drive(self, body: dict[str, Any], context: Context, agent: AgentRequest, prepared: Any,
                     stream: Stream, caller: Caller) -> None:
        output = ResponseOutput(stream.emit, prepared.tools, context_for(body["_key"], caller.project,
                                                                         prepared.file_search),
                                self._tools.citations, self._tools.files, self._tools.container_files,
                                prepared.container, context.containers, body.get("max_tool_calls"))
        try:
            stream.emit({"type": "response.created", "response": body})
            if body["status"] == "queued":
                stream.emit({"type": "response.queued", "response": body})
                body["status"] = "in_progress"
                self.store.save(body)
            stream.emit({"type": "response.in_progress", "response": body})
            messages = ([{"role": "system", "content": body["instructions"]}] if body["instructions"] else [])
            ending = await run_agent(self._model, agent, messages + self._context.messages(context), output)
            self._finish(body, ending, output, stream)
            if body["status"] == "completed" and context.conversation:
                self.store.add_items(context.conversation, context.own + output.items)
        except asyncio.CancelledError:
            body.update(output=output.items)
            if self._closing:
                body.update(status="failed", error=STOPPED)
            else:
                body.update(status="cancelled")
            self.store.save(body, LIVE)
            raise
        except Exception as exc:  # an engine failure: the response fails saying why, as OpenAI's do
            log.exception("response %s failed", body["id"])
            self._fail(body, output, stream, {"code": "server_error", "message": f"The response failed: {exc}"})
        finally:
            stream.end()
            if not body["store"]:
                self.store.forget(body["id"])  # kept only while it ran

    def _finish(self, body: dict[str, Any], ending: Ending, output: ResponseOutput, stream: Stream) -> None:
        if ending.status == "failed":
            code, message = ending.error or ("server_error", "The response failed.")
            self._fail(body, output, stream, {"code": code, "message": message}, ending)
            return
        if ending.status == "requires_action":
            output.functions(ending.calls)
        body.update(output=output.items, usage=usage(ending.usage))
        if ending.status == "incomplete":
            body.update(status="incomplete", incomplete_details={"reason": "max_output_tokens"})
        else:
            body.update(status="completed", completed_at=int(time.time()))
        if self.store.save(body, LIVE):
            stream.emit({"type": f"response.{body['status']}", "response": body})

    def _fail(self, body: dict[str, Any], output: ResponseOutput, stream: Stream, error: dict[str, str],
              ending: Ending | None = None) -> None:
        body.update(status="failed", error=error, output=output.items,
                    usage=usage(ending.usage) if ending else None)
        if self.store.save(body, LIVE):
            stream.emit({"type": "error", "error": {"type": "server_error", "param": None, **error}})
            stream.emit({"type": "response.failed", "response": body})

    # ---- the rest of a response's life ---------------------------------------------------------------------

    def retrieve(self, response_id: str, include: frozenset[str]) -> dict[str, Any]:
        return present(self.store.get(response_id), include)

    async def cancel(self, response_id: str) -> dict[str, Any]:
        body = self.store.get(response_id)
        if not body["background"]:
            raise InvalidRequest("Only responses created with background=true can be cancelled.")
        task = self._tasks.get(response_id)
        if body["status"] in LIVE and task is not None:
            task.cancel()
            await asyncio.wait({task})
        return present(self.store.get(response_id), frozenset())

    async def delete(self, response_id: str) -> None:
        task = self._tasks.get(response_id)
        if task is not None:
            task.cancel()
            await asyncio.wait({task})
        self.store.delete(response_id)

    def recover(self) -> int:
        """After a restart no response is running: those that were end `failed`, saying so."""
        ended = 0
        for response_id in self.store.live():
            body = self.store.get(response_id, stored_only=False)
            body.update(status="failed", error={**STOPPED, "message": "The server restarted while this response "
                                                                      "was live."})
            ended += self.store.save(body, LIVE)
        return ended

    async def close(self) -> None:
        self._closing = True
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
