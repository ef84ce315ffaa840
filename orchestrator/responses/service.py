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
from orchestrator.responses import checks
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
from orchestrator.responses.store import LIVE, ConversationNotFound, ResponseStore
from orchestrator.responses.tools import Prepared, ResponseTools
from orchestrator.services.leases import LeaseKeeper, Leases
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


@dataclass(frozen=True)
class Plan:
    """A checked request, ready to run: its context, its tools, what the model is sent."""

    context: Context
    prepared: Prepared
    agent: AgentRequest
    messages: list[dict[str, Any]]
    include: frozenset[str]


class Responses:
    def __init__(self, store: ResponseStore, model: ModelClient, tools: ResponseTools, context: ContextBuilder,
                 limits: Limits, leases: Leases) -> None:
        self.store = store
        self.context = context
        self._model, self._tools, self._limits = model, tools, limits
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._closing = False
        # Replicas share the database: this process's leases on the responses it drives.
        self._keeper = LeaseKeeper(leases, self._tasks, "response", orphaned=self._orphaned)

    async def create(self, request: dict[str, Any], caller: Caller,
                     watcher: asyncio.Queue[Event | None] | None = None) -> dict[str, Any]:
        """Check the request, save the response, and run it: to the end (the final Response), or in the
        background (the queued Response at once). A `watcher` sees every event, then None."""
        plan = await self._plan(request, caller)
        response_id = new_id("resp_", 24)
        body = new_body(response_id, request, "queued" if request.get("background") else "in_progress")
        body["_key"] = plan.context.key or response_id
        self.store.insert(body, plan.context.own, caller.project)
        stream = Stream(plan.include)
        if watcher is not None:
            stream.watchers.append(watcher)
        task = self._keeper.drive(response_id, self._drive(body, plan, stream, caller))
        if request.get("background") or watcher is not None:
            return present(body, plan.include)
        try:
            await asyncio.shield(task)  # a client that leaves does not stop the response: it is stored
        except asyncio.CancelledError:
            if not task.cancelled():
                raise  # this request was cancelled, not the response
        return present(body, plan.include)  # _drive brought it to its end (or a delete cancelled it) in place

    async def _plan(self, request: dict[str, Any], caller: Caller) -> Plan:
        include = check_include(request.get("include"))
        if request.get("background") and request.get("store") is False:
            raise InvalidRequest("background responses must be stored (store: true).", param="background")
        checks.tools(request.get("tools") or [])
        checks.tool_choice(request.get("tool_choice"))
        checks.text_format(request.get("text"))
        tools = chat_tools(request.get("tools") or [])
        choice, offered = chat_tool_choice(request.get("tool_choice"), tools)
        response_format = chat_format(request.get("text"))
        context = await self.context.build(request, caller)
        prepared = await self._tools.prepare(request.get("tools") or [], caller, context.items)
        instructions = [{"role": "system", "content": request["instructions"]}] if request.get("instructions") else []
        agent = AgentRequest(request["model"], offered, frozenset(prepared.hosted), {
            "temperature": request.get("temperature"), "top_p": request.get("top_p"), "tool_choice": choice,
            "response_format": response_format}, parallel_tool_calls=request.get("parallel_tool_calls", True),
            max_completion_tokens=request.get("max_output_tokens"), truncate=request.get("truncation") == "auto",
            context_tokens=self._limits.context_tokens, max_output_chars=self._limits.max_output_chars)
        return Plan(context, prepared, agent, instructions + self.context.messages(context), include)

    async def _drive(self, body: dict[str, Any], plan: Plan, stream: Stream, caller: Caller) -> None:
        context, prepared = plan.context, plan.prepared
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
            ending = await run_agent(self._model, plan.agent, plan.messages, output)
            if self._finish(body, ending, output, stream) and context.conversation:
                self._append(context.conversation, context.own + output.items)
        except asyncio.CancelledError:
            ended = {**body, "output": output.items, **({"status": "failed", "error": STOPPED} if self._closing
                                                        else {"status": "cancelled"})}
            if self.store.save(ended, LIVE):
                body.update(ended)
            raise
        except Exception as exc:  # an engine failure: the response fails saying why, as OpenAI's do
            log.exception("response %s failed", body["id"])
            self._fail(body, output, stream, {"code": "server_error", "message": f"The response failed: {exc}"})
        finally:
            stream.end()
            if not body["store"]:
                self.store.forget(body["id"])  # kept only while it ran

    def _append(self, conversation_id: str, items: list[dict[str, Any]]) -> None:
        try:
            self.store.add_items(conversation_id, items)
        except ConversationNotFound:  # deleted while the response ran: the response stands, its items go
            log.info("conversation %s was deleted before response items could be added", conversation_id)

    def _finish(self, body: dict[str, Any], ending: Ending, output: ResponseOutput, stream: Stream) -> bool:
        """The response's end as the loop gave it; False if a cancel or delete got there first."""
        if ending.status == "failed":
            code, message = ending.error or ("server_error", "The response failed.")
            return self._fail(body, output, stream, {"code": code, "message": message}, ending)
        if ending.status == "requires_action":
            output.functions(ending.calls)
        ended = {**body, "output": output.items, "usage": usage(ending.usage)}
        if ending.status == "incomplete":
            ended.update(status="incomplete", incomplete_details={"reason": "max_output_tokens"})
        else:
            ended.update(status="completed", completed_at=int(time.time()))
        if not self.store.save(ended, LIVE):
            return False
        body.update(ended)
        stream.emit({"type": f"response.{body['status']}", "response": body})
        return True

    def _fail(self, body: dict[str, Any], output: ResponseOutput, stream: Stream, error: dict[str, str],
              ending: Ending | None = None) -> bool:
        ended = {**body, "status": "failed", "error": error, "output": output.items,
                 "usage": usage(ending.usage) if ending else None}
        if not self.store.save(ended, LIVE):
            return False
        body.update(ended)
        stream.emit({"type": "error", "error": {"type": "server_error", "param": None, **error}})
        stream.emit({"type": "response.failed", "response": body})
        return True

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
        elif body["status"] in LIVE:  # driven by another replica: its next lease renewal stops its driver
            self.store.save({**body, "status": "cancelled"}, LIVE)
        return present(self.store.get(response_id), frozenset())

    async def delete(self, response_id: str) -> None:
        self.store.get(response_id)  # a 404 before anything is stopped
        task = self._tasks.get(response_id)
        if task is not None:
            task.cancel()
            await asyncio.wait({task})
        self.store.delete(response_id)

    def recover(self) -> int:
        """At start: keep leases (orchestrator.services.leases): responses no replica drives end `failed` now
        and at every sweep. How many ended now."""
        return self._keeper.start()

    def _orphaned(self, response_id: str, error: dict[str, str]) -> None:
        body = self.store.get(response_id, stored_only=False)
        if not body["store"]:
            self.store.forget(response_id)  # it was kept only while it ran
        else:
            self.store.save({**body, "status": "failed", "error": error}, LIVE)

    async def close(self) -> None:
        self._closing = True
        await self._keeper.stop()
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
