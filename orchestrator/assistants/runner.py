"""Runs: the model and the hosted tools take turns on a thread until the model answers (a message), needs the
caller's functions (`requires_action`), or fails.

Every state is saved before anyone can see it, and status changes are compare-and-set, so a cancel and the
loop never both win. Hosted tools run through the tool registry in the scope "assistants", keyed by thread id:
each thread has its own sandbox and its own citation markers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from orchestrator import logs
from orchestrator.agent.chat import ModelClient, ToolCall
from orchestrator.agent.loop import AgentRequest, Usage, run_agent
from orchestrator.assistants.events import Event, EventHub
from orchestrator.assistants.hosted import HOSTED, SCOPE, HostedCalls
from orchestrator.assistants.options import check_tool_choice, model_format, model_tool_choice, prompt, stores_ready
from orchestrator.assistants.service import LIVE, Assistants
from orchestrator.assistants.steps import StepLog, usage_of
from orchestrator.assistants.store import ObjectNotFound
from orchestrator.assistants.turns import RunTurns
from orchestrator.assistants.writer import MessageWriter
from orchestrator.errors import InvalidRequest
from orchestrator.metrics import TOOL_CALLS, record_run
from orchestrator.services.leases import LeaseKeeper, Leases
from orchestrator.tools.annotations import Annotator
from orchestrator.tools.registry import ToolRegistry
from retrieval.ids import new_id

log = logging.getLogger("toolshed.runs")
# OpenAI's cap on the messages one request adds to a thread.
MAX_ADDITIONAL_MESSAGES = 32
STOPPED = {"code": "server_error", "message": "The server stopped while this run was live."}
DRIVEN = ("queued", "in_progress", "cancelling")  # a run in requires_action waits for its caller, not a replica
# How a run's ending leaves a message the model was still writing.
_CUT = {"cancelled": "run_cancelled", "expired": "run_expired", "failed": "run_failed"}


@dataclass(frozen=True)
class RunLimits:
    context_tokens: int = 16_384  # what one prompt may hold (truncation_strategy auto)
    expiry_seconds: float = 600.0  # how long a run may stay live
    # What the model may write over a whole run (answers and tool-call arguments); past it the run ends
    # incomplete instead of growing a message, and the server's memory, without bound.
    max_output_chars: int = 1_000_000


class Runs:
    def __init__(self, assistants: Assistants, model: ModelClient, tools: ToolRegistry, annotator: Annotator,
                 leases: Leases, limits: RunLimits | None = None) -> None:
        self._assistants = assistants
        self._objects = assistants.objects
        self._model = model
        self._annotator = annotator
        self._limits = limits or RunLimits()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._expiries: dict[str, asyncio.Task[None]] = {}
        self._writers: dict[str, MessageWriter] = {}
        self._closing = False
        self.events = EventHub()
        self._steps = StepLog(self._objects, self.events)
        self._hosted = HostedCalls(tools, self._objects, self._steps, assistants.owners)
        # Replicas share the database: this process's leases on the runs it drives.
        self._keeper = LeaseKeeper(leases, self._tasks, "run", lost=self._lost, also=self._expire_overdue,
                                   orphaned=lambda run_id, error: self._end(run_id, "failed", last_error=error))

    def create(self, thread_id: str, assistant_id: str, options: dict[str, Any],
               additional_messages: list[tuple[dict[str, Any], list[Any]]],
               watcher: asyncio.Queue[Event] | None = None) -> dict[str, Any]:
        """Save the run as `queued` (the thread lock refuses a second live run), add `additional_messages`,
        then start it in the background; `watcher` (a stream) sees every event from `thread.run.created` on."""
        if len(additional_messages) > MAX_ADDITIONAL_MESSAGES:
            raise InvalidRequest(f"Invalid 'additional_messages': array too long. Expected an array with maximum "
                                 f"length {MAX_ADDITIONAL_MESSAGES}, but got an array with length "
                                 f"{len(additional_messages)} instead.", param="additional_messages",
                                 code="array_above_max_length")
        self._objects.get("threads", thread_id)
        assistant = self._objects.get("assistants", assistant_id)
        now = int(time.time())
        run = {"id": new_id("run_", 12), "object": "thread.run", "created_at": now, "thread_id": thread_id,
               "assistant_id": assistant_id, "status": "queued", "required_action": None, "last_error": None,
               "expires_at": now + math.ceil(self._limits.expiry_seconds), "started_at": None,
               "cancelled_at": None, "failed_at": None, "completed_at": None, "incomplete_details": None,
               "model": assistant["model"], "instructions": assistant["instructions"], "tools": assistant["tools"],
               "metadata": {}, "usage": None, "temperature": assistant.get("temperature"),
               "top_p": assistant.get("top_p"), "max_prompt_tokens": None, "max_completion_tokens": None,
               "truncation_strategy": {"type": "auto", "last_messages": None},
               "response_format": assistant.get("response_format", "auto"), "tool_choice": "auto",
               "parallel_tool_calls": True, **options}
        run["instructions"] = run["instructions"] or ""  # a Run's instructions are a string, never null
        check_tool_choice(run)
        try:
            self._objects.insert("runs", run, thread_id=thread_id, status="queued")
        except sqlite3.IntegrityError as exc:
            live = self.live_run(thread_id)
            raise InvalidRequest(f"Thread {thread_id} already has an active run {live}.") from exc
        for fields, attachments in additional_messages:
            self._assistants.create_message(thread_id, fields, attachments, run_lock=False)
        if watcher is not None:
            self.events.add(run["id"], watcher)
        self.events.emit(run["id"], "thread.run.created", run)
        self.events.emit(run["id"], "thread.run.queued", run)
        self._arm_expiry(run["id"], self._limits.expiry_seconds)
        self._start(run["id"])
        return run

    def live_run(self, thread_id: str) -> str | None:
        return self._objects.live_run(thread_id, LIVE)

    def _start(self, run_id: str) -> None:
        self._keeper.drive(run_id, self._drive(run_id))

    # ---- the loop ------------------------------------------------------------------------------------------

    async def _drive(self, run_id: str) -> None:
        run = self._objects.transition(run_id, ("queued",), {"status": "in_progress", "started_at": int(time.time())})
        if run is None:
            return
        self.events.emit(run_id, "thread.run.in_progress", run)
        with logs.bind(thread_id=run["thread_id"], run_id=run_id):
            try:
                conversation = self._objects.conversation(run_id)
                if not conversation:
                    await stores_ready(self._assistants, run)
                    conversation = prompt(self._assistants, run)
                await self._turns(run, conversation)
            except asyncio.CancelledError:
                if self._closing:
                    self._end(run_id, "failed", last_error=STOPPED)
                else:
                    self._end(run_id, "cancelled")
                raise
            except Exception as exc:
                log.exception("run %s failed", run_id)
                self._end(run_id, "failed", last_error={"code": "server_error", "message": f"The run failed: {exc}"})
            finally:
                self._writers.pop(run_id, None)

    async def _turns(self, run: dict[str, Any], conversation: list[dict[str, Any]]) -> None:
        tools = [HOSTED.get(tool["type"], tool) for tool in run["tools"]]
        request = AgentRequest(
            run["model"], tools, frozenset(HOSTED), {
                "temperature": run.get("temperature"), "top_p": run.get("top_p"),
                "tool_choice": model_tool_choice(run["tool_choice"]),
                "response_format": model_format(run["response_format"])},
            parallel_tool_calls=run["parallel_tool_calls"], max_prompt_tokens=run.get("max_prompt_tokens"),
            max_completion_tokens=run.get("max_completion_tokens"),
            truncate=run["truncation_strategy"]["type"] == "auto", context_tokens=self._limits.context_tokens,
            max_output_chars=self._limits.max_output_chars)
        usage = run.get("usage") or usage_of(0, 0)
        turns = RunTurns(run, self._new_writer, self._steps, self._hosted)
        ending = await run_agent(self._model, request, conversation, turns,
                                 Usage(usage["prompt_tokens"], usage["completion_tokens"]))
        total = usage_of(ending.usage.prompt_tokens, ending.usage.completion_tokens)
        if ending.status == "requires_action":
            self._require_action(run, ending.calls, ending.conversation, total)
        elif ending.status == "failed":
            code, message = ending.error or ("server_error", "The run failed.")
            self._end(run["id"], "failed", last_error={"code": code, "message": message})
        elif ending.status == "incomplete":
            self._end(run["id"], "incomplete", usage=total, incomplete_details={"reason": ending.reason})
        else:
            self._end(run["id"], "completed", usage=total)

    def _new_writer(self, run: dict[str, Any]) -> MessageWriter:
        """The writer of a turn's message; kept so that a run's ending can mark a half-written one."""
        writer = self._writers[run["id"]] = MessageWriter(run, self._assistants, self.events, self._annotator,
                                                          self._steps.open, SCOPE)
        return writer

    def _require_action(self, run: dict[str, Any], calls: list[ToolCall], conversation: list[dict[str, Any]],
                        usage: dict[str, int]) -> None:
        required: list[dict[str, Any]] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}} for c in calls]
        TOOL_CALLS.labels("function").inc(len(required))
        self._steps.open(run, "tool_calls", {"type": "tool_calls", "tool_calls": [
            {**call, "function": {**call["function"], "output": None}} for call in required]})
        self._objects.save_conversation(run["id"], conversation)
        waiting = self._objects.transition(run["id"], ("in_progress",), {
            "status": "requires_action", "usage": usage,
            "required_action": {"type": "submit_tool_outputs", "submit_tool_outputs": {"tool_calls": required}}})
        if waiting is not None:
            self.events.emit(run["id"], "thread.run.requires_action", waiting)

    # ---- endings -------------------------------------------------------------------------------------------

    def _end(self, run_id: str, status: str, **changes: Any) -> dict[str, Any] | None:
        stamp = {"completed": "completed_at", "failed": "failed_at", "cancelled": "cancelled_at"}.get(status)
        ended = self._objects.transition(run_id, LIVE, {
            "status": status, "expires_at": None, "required_action": None, **changes,
            **({stamp: int(time.time())} if stamp else {})})
        if ended is not None:
            writer = self._writers.get(run_id)
            if writer is not None and status in _CUT:
                writer.cut(_CUT[status])
            expiry = self._expiries.pop(run_id, None)
            if expiry is not None and expiry is not asyncio.current_task():
                expiry.cancel()
            self._steps.end_open(ended)
            record_run(status, time.time() - ended["created_at"])
            self.events.emit(run_id, f"thread.run.{status}", ended)
        return ended

    def _arm_expiry(self, run_id: str, delay: float) -> None:
        self._expiries[run_id] = asyncio.create_task(self._expire(run_id, delay))

    async def _expire(self, run_id: str, delay: float) -> None:
        """A run still live at its `expires_at` (a `requires_action` nobody answered, or a run that took too
        long) ends `expired`; whatever it was doing stops."""
        await asyncio.sleep(max(delay, 0.0))
        if self._end(run_id, "expired") is not None:
            task = self._tasks.get(run_id)
            if task is not None:
                task.cancel()
                await asyncio.wait({task})

    # ---- the caller's side ---------------------------------------------------------------------------------

    def update(self, thread_id: str, run_id: str, metadata: dict[str, str] | None) -> dict[str, Any]:
        """Only `metadata` of a run is the caller's to change."""
        run = self._objects.get("runs", run_id, thread_id=thread_id)
        if metadata is None:
            return run
        # In one transaction with any status change, so neither overwrites the other.
        return self._objects.transition(run_id, None, {"metadata": metadata}) or run

    def submit_tool_outputs(self, thread_id: str, run_id: str, outputs: list[tuple[str, str]],
                            watcher: asyncio.Queue[Event] | None = None) -> dict[str, Any]:
        run = self._objects.get("runs", run_id, thread_id=thread_id)
        if run["status"] != "requires_action":
            raise InvalidRequest(f"Runs in status \"{run['status']}\" do not accept tool outputs.")
        expected = [call["id"] for call in run["required_action"]["submit_tool_outputs"]["tool_calls"]]
        given = dict(outputs)
        if sorted(given) != sorted(expected) or len(given) != len(outputs):
            raise InvalidRequest(f"Expected exactly one output for each of the tool calls {', '.join(expected)}.",
                                 param="tool_outputs")
        conversation = self._objects.conversation(run_id) or []
        conversation += [{"role": "tool", "tool_call_id": call_id, "content": given[call_id]} for call_id in expected]
        self._objects.save_conversation(run_id, conversation)
        resumed = self._objects.transition(run_id, ("requires_action",), {"status": "queued", "required_action": None},
                                           self._keeper.leases.fresh())  # live again with its lease: never swept
        if resumed is None:
            raise InvalidRequest("The run no longer waits for tool outputs.")
        if watcher is not None:
            self.events.add(run_id, watcher)
        step = self._objects.complete_function_step(run_id, given)
        if step is not None:
            self.events.emit(run_id, "thread.run.step.completed", step)
        self.events.emit(run_id, "thread.run.queued", resumed)
        self._start(run_id)
        return resumed

    async def cancel(self, thread_id: str, run_id: str) -> dict[str, Any]:
        run = self._objects.get("runs", run_id, thread_id=thread_id)
        if run["status"] not in LIVE:
            raise InvalidRequest(f"Cannot cancel run with status '{run['status']}'.")
        cancelling = self._objects.transition(run_id, LIVE, {"status": "cancelling"})
        if cancelling is not None:
            self.events.emit(run_id, "thread.run.cancelling", cancelling)
        task = self._tasks.get(run_id)
        if task is not None:
            task.cancel()
            await asyncio.wait({task})
        return self._end(run_id, "cancelled") or self._objects.get("runs", run_id)

    def recover(self) -> int:
        """At start: runs no replica drives end `failed` (services.leases); waiting ones keep their expiry."""
        for run_id in self._objects.live_runs(("requires_action",)):
            self._arm_expiry(run_id, self._objects.get("runs", run_id)["expires_at"] - time.time())
        return self._keeper.start()

    def _lost(self, run_id: str) -> None:
        """Another replica ended (or deleted) this run: the message being written here and the streams say so."""
        if (writer := self._writers.get(run_id)) is not None:
            writer.cut("run_cancelled")
        with contextlib.suppress(ObjectNotFound):
            run = self._objects.get("runs", run_id)
            self.events.emit(run_id, f"thread.run.{run['status']}", run)

    def _expire_overdue(self) -> None:  # runs waiting for tool outputs, whichever replica started them
        for run_id in self._keeper.leases.overdue("requires_action", "expires_at"):
            self._end(run_id, "expired")

    async def close(self) -> None:
        """Runs being driven end `failed` ("the server stopped"); waiting ones keep waiting (see recover())."""
        self._closing = True
        await self._keeper.stop()
        tasks = [*self._tasks.values(), *self._expiries.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

