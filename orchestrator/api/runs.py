"""/v1/threads/{id}/runs, run steps, and /v1/threads/runs (openai.types.beta.threads.Run and runs.RunStep)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from fastapi.sse import EventSourceResponse, format_sse_event

from orchestrator.api.assistant_schemas import RunCreate, RunUpdate, ThreadAndRunCreate, ToolOutputs, resources_of
from orchestrator.api.deps import AssistantsDep, RunsDep
from orchestrator.api.openai_shapes import Run, RunStep, shaped
from orchestrator.api.ownership import owned_path, require, require_messages, require_resources
from orchestrator.api.schemas import page_of
from orchestrator.assistants.events import Event, until_final
from orchestrator.assistants.runner import Runs
from orchestrator.db import PageRequest
from orchestrator.errors import InvalidRequest
from orchestrator.tools.steps import without_result_content
from orchestrator.web.auth import CallerDep, OwnersDep

router = APIRouter(prefix="/threads", tags=["runs"], dependencies=[owned_path("thread_id")])
Limit = Annotated[int, Query(ge=1, le=100)]
Order = Literal["asc", "desc"]
# The SDK sends list parameters as `include[]=…`.
Include = Annotated[list[str] | None, Query(alias="include[]")]
RESULT_CONTENT = "step_details.tool_calls[*].file_search.results[*].content"
# The SDK's *_and_poll helpers wait this long between polls (their default is a full second).
POLL_HEADERS = {"openai-poll-after-ms": "100"}


def _included(include: list[str] | None) -> bool:
    """Whether the request asked for file_search result content; anything else it asks to include is a 400."""
    unknown = sorted(set(include or []) - {RESULT_CONTENT})
    if unknown:
        raise InvalidRequest(f"Unknown include value(s) {', '.join(unknown)}; the only one is {RESULT_CONTENT}.",
                             param="include")
    return bool(include)


def _step(step: dict[str, Any], with_content: bool) -> dict[str, Any]:
    return step if with_content else without_result_content(step)


def _stream(queue: asyncio.Queue[Event], first: list[Event], runs: Runs, run_id: str,
            with_content: bool = False) -> EventSourceResponse:
    """Server-Sent Events as OpenAI sends them: `event: <name>` and the object as `data`, ending with
    `event: done` / `data: [DONE]` after the event that ends this request. A client that leaves stops only its
    stream; the run goes on."""

    def frame(name: str, data: dict[str, Any]) -> bytes:
        if data.get("object") == "thread.run.step":
            data = _step(data, with_content)
        return format_sse_event(event=name, data_str=json.dumps(data))

    async def frames() -> AsyncIterator[bytes]:
        try:
            for name, data in first:
                yield frame(name, data)
            async for name, data in until_final(queue):
                yield frame(name, data)
            yield format_sse_event(event="done", data_str="[DONE]")
        finally:
            runs.events.forget(run_id, queue)

    return EventSourceResponse(frames(), headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.post("/runs", **shaped(Run, streamed=True))
async def create_thread_and_run(body: ThreadAndRunCreate, assistants: AssistantsDep, runs: RunsDep,
                                caller: CallerDep, owners: OwnersDep) -> dict[str, Any] | EventSourceResponse:
    """Create a thread and run it (OpenAI takes no `include` here)."""
    given = body.thread
    resources = resources_of(given.tool_resources if given else None)
    messages = [(m.fields(), m.attachment_list()) for m in (given.messages or [])] if given else []
    require(caller, owners, assistant_ids=[body.assistant_id])
    require_resources(caller, owners, resources)
    require_messages(caller, owners, [*messages, *body.messages()])
    thread = assistants.create_thread(resources, given.metadata if given else None, messages, caller.project)
    queue: asyncio.Queue[Event] = asyncio.Queue()
    run = runs.create(thread["id"], body.assistant_id, body.options(), body.messages(),
                      queue if body.stream else None)
    return _stream(queue, [("thread.created", thread)], runs, run["id"]) if body.stream else run


@router.post("/{thread_id}/runs", **shaped(Run, streamed=True))
async def create_run(thread_id: str, body: RunCreate, runs: RunsDep, caller: CallerDep, owners: OwnersDep,
                     include: Include = None) -> dict[str, Any] | EventSourceResponse:
    with_content = _included(include)
    require(caller, owners, assistant_ids=[body.assistant_id])
    require_messages(caller, owners, body.messages())
    queue: asyncio.Queue[Event] = asyncio.Queue()
    run = runs.create(thread_id, body.assistant_id, body.options(), body.messages(), queue if body.stream else None)
    return _stream(queue, [], runs, run["id"], with_content) if body.stream else run


@router.get("/{thread_id}/runs", **shaped(Run, listed=True))
async def list_runs(thread_id: str, assistants: AssistantsDep, limit: Limit = 20, order: Order = "desc",
                    after: str | None = None, before: str | None = None) -> dict[str, Any]:
    assistants.objects.get("threads", thread_id)
    items, has_more = assistants.objects.page("runs", PageRequest(limit, order, after, before), thread_id=thread_id)
    return page_of(items, has_more)


@router.get("/{thread_id}/runs/{run_id}", **shaped(Run))
async def retrieve_run(thread_id: str, run_id: str, assistants: AssistantsDep, response: Response) -> dict[str, Any]:
    response.headers.update(POLL_HEADERS)
    return assistants.objects.get("runs", run_id, thread_id=thread_id)


@router.post("/{thread_id}/runs/{run_id}", **shaped(Run))
async def update_run(thread_id: str, run_id: str, body: RunUpdate, runs: RunsDep) -> dict[str, Any]:
    return runs.update(thread_id, run_id, body.metadata)


@router.post("/{thread_id}/runs/{run_id}/cancel", **shaped(Run))
async def cancel_run(thread_id: str, run_id: str, runs: RunsDep) -> dict[str, Any]:
    return await runs.cancel(thread_id, run_id)


@router.post("/{thread_id}/runs/{run_id}/submit_tool_outputs", **shaped(Run, streamed=True))
async def submit_tool_outputs(thread_id: str, run_id: str, body: ToolOutputs,
                              runs: RunsDep) -> dict[str, Any] | EventSourceResponse:
    queue: asyncio.Queue[Event] = asyncio.Queue()
    run = runs.submit_tool_outputs(thread_id, run_id, [(o.tool_call_id, o.output) for o in body.tool_outputs],
                                   queue if body.stream else None)
    return _stream(queue, [], runs, run_id) if body.stream else run


@router.get("/{thread_id}/runs/{run_id}/steps", **shaped(RunStep, listed=True))
async def list_run_steps(thread_id: str, run_id: str, assistants: AssistantsDep, limit: Limit = 20,
                         order: Order = "desc", after: str | None = None, before: str | None = None,
                         include: Include = None) -> dict[str, Any]:
    with_content = _included(include)
    assistants.objects.get("runs", run_id, thread_id=thread_id)
    items, has_more = assistants.objects.page("run_steps", PageRequest(limit, order, after, before), run_id=run_id)
    return page_of([_step(item, with_content) for item in items], has_more)


@router.get("/{thread_id}/runs/{run_id}/steps/{step_id}", **shaped(RunStep))
async def retrieve_run_step(thread_id: str, run_id: str, step_id: str, assistants: AssistantsDep,
                            include: Include = None) -> dict[str, Any]:
    with_content = _included(include)
    assistants.objects.get("runs", run_id, thread_id=thread_id)
    return _step(assistants.objects.get("run_steps", step_id, run_id=run_id), with_content)
