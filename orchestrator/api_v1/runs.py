"""v1 /threads/{id}/runs (create, list, retrieve, update, cancel, submit_tool_outputs), their steps, and
/threads/runs: the same runs as v2's, driven by the same Runs service, shown in v1 shapes (no streaming in v1)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response

from orchestrator.api_v1 import shapes
from orchestrator.api_v1.route import ManagedStoresDep, V1Route, owned_path, page_of, require
from orchestrator.api_v1.schemas import MetadataUpdate, RunCreate, ThreadAndRunCreate, ToolOutputs
from orchestrator.assistants.managed_stores import ManagedStores, file_ids_of
from orchestrator.assistants.service import Resources
from orchestrator.assistants.store import ObjectNotFound
from orchestrator.db import PageRequest
from orchestrator.services.container import Services
from orchestrator.web.auth import CallerDep, OwnersDep, ServicesDep

router = APIRouter(prefix="/threads", tags=["runs v1"], route_class=V1Route, include_in_schema=False,
                   dependencies=[owned_path("thread_id")])
Limit = Annotated[int, Query(ge=1, le=100)]
Order = Literal["asc", "desc"]
# 1.2.3 has no poll helper: this only speeds up later SDKs' (as the v2 face does).
POLL_HEADERS = {"openai-poll-after-ms": "100"}


def _run(services: Services, stored: dict[str, Any]) -> dict[str, Any]:
    """A run in v1 shape; its `file_ids` are its assistant's files (none once the assistant is deleted)."""
    try:
        file_ids = file_ids_of(services.assistants.objects.get("assistants", stored["assistant_id"]))
    except ObjectNotFound:
        file_ids = []
    return shapes.run(stored, file_ids)


async def _start(services: Services, managed: ManagedStores, thread_id: str, body: RunCreate) -> dict[str, Any]:
    """Index the assistant's files first when the run searches, then start the run (which waits for the index)."""
    options = body.options()
    await managed.sync(body.assistant_id, options.get("tools"))
    return _run(services, services.runs.create(thread_id, body.assistant_id, options, []))


@router.post("/runs")
async def create_thread_and_run(body: ThreadAndRunCreate, services: ServicesDep, caller: CallerDep,
                                owners: OwnersDep, managed: ManagedStoresDep) -> dict[str, Any]:
    messages = (body.thread.messages or []) if body.thread else []
    require(caller, owners, "assistant_id", [body.assistant_id])
    require(caller, owners, "file_id", [f for message in messages for f in message.file_ids])
    services.assistants.objects.get("assistants", body.assistant_id)
    thread = services.assistants.create_thread(Resources(), body.thread.metadata if body.thread else None,
                                               [m.pair() for m in messages], caller.project)
    return await _start(services, managed, thread["id"], body)


@router.post("/{thread_id}/runs")
async def create_run(thread_id: str, body: RunCreate, services: ServicesDep, caller: CallerDep, owners: OwnersDep,
                     managed: ManagedStoresDep) -> dict[str, Any]:
    require(caller, owners, "assistant_id", [body.assistant_id])
    return await _start(services, managed, thread_id, body)


@router.get("/{thread_id}/runs")
async def list_runs(thread_id: str, services: ServicesDep, limit: Limit = 20, order: Order = "desc",
                    after: str | None = None, before: str | None = None) -> dict[str, Any]:
    objects = services.assistants.objects
    objects.get("threads", thread_id)
    items, has_more = objects.page("runs", PageRequest(limit, order, after, before), thread_id=thread_id)
    return page_of([_run(services, item) for item in items], has_more)


@router.get("/{thread_id}/runs/{run_id}")
async def retrieve_run(thread_id: str, run_id: str, services: ServicesDep, response: Response) -> dict[str, Any]:
    response.headers.update(POLL_HEADERS)
    return _run(services, services.assistants.objects.get("runs", run_id, thread_id=thread_id))


@router.post("/{thread_id}/runs/{run_id}")
async def update_run(thread_id: str, run_id: str, body: MetadataUpdate, services: ServicesDep) -> dict[str, Any]:
    return _run(services, services.runs.update(thread_id, run_id, body.metadata))


@router.post("/{thread_id}/runs/{run_id}/cancel")
async def cancel_run(thread_id: str, run_id: str, services: ServicesDep) -> dict[str, Any]:
    return _run(services, await services.runs.cancel(thread_id, run_id))


@router.post("/{thread_id}/runs/{run_id}/submit_tool_outputs")
async def submit_tool_outputs(thread_id: str, run_id: str, body: ToolOutputs,
                              services: ServicesDep) -> dict[str, Any]:
    outputs = [(output.tool_call_id, output.output) for output in body.tool_outputs]
    return _run(services, services.runs.submit_tool_outputs(thread_id, run_id, outputs))


@router.get("/{thread_id}/runs/{run_id}/steps")
async def list_run_steps(thread_id: str, run_id: str, services: ServicesDep, limit: Limit = 20,
                         order: Order = "desc", after: str | None = None,
                         before: str | None = None) -> dict[str, Any]:
    objects = services.assistants.objects
    objects.get("runs", run_id, thread_id=thread_id)
    items, has_more = objects.page("run_steps", PageRequest(limit, order, after, before), run_id=run_id)
    return page_of([shapes.step(item) for item in items], has_more)


@router.get("/{thread_id}/runs/{run_id}/steps/{step_id}")
async def retrieve_run_step(thread_id: str, run_id: str, step_id: str, services: ServicesDep) -> dict[str, Any]:
    objects = services.assistants.objects
    objects.get("runs", run_id, thread_id=thread_id)
    return shapes.step(objects.get("run_steps", step_id, run_id=run_id))
