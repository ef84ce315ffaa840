"""/v1/containers: the OpenAI Containers API, plus execute / interrupt / restart on a container's kernel."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from fastapi.sse import EventSourceResponse, format_sse_event

from orchestrator.api.deps import Config, ContainerFilesDep, Files, Interpreter, Manager, ProjectSandboxesDep
from orchestrator.api.openai_shapes import EVENT_STREAM
from orchestrator.api.ownership import owned_path, require
from orchestrator.api.schemas import (
    ContainerCreate,
    ContainerObject,
    Deleted,
    ExecuteRequest,
    ExecutionObject,
    ListPage,
    WireOutput,
    execution_object,
    json_response,
    output_wire,
    page_of,
    paginate,
)
from orchestrator.sandbox import SandboxSpec
from orchestrator.tools.cells import CellRun, Item
from orchestrator.web.auth import CallerDep, OwnersDep
from orchestrator.web.disconnect import cancel, unless_disconnected
from orchestrator.web.errors import APIError, envelope

log = logging.getLogger("toolshed.api")
router = APIRouter(prefix="/containers", tags=["containers"], dependencies=[owned_path("container_id")])


@router.post("", response_model=ContainerObject)
async def create_container(body: ContainerCreate, manager: Manager, config: Config, files: Files,
                           container_files: ContainerFilesDep, sandboxes: ProjectSandboxesDep, caller: CallerDep,
                           owners: OwnersDep) -> ContainerObject:
    if body.network_policy is not None and body.network_policy.type != "disabled":
        raise APIError(400, "Sandboxes never have network access; only network_policy type 'disabled' is "
                            "supported.", param="network_policy")
    minutes = body.expires_after.minutes if body.expires_after else 20
    spec = SandboxSpec(name=body.name, memory_limit=body.memory_limit or config.default_memory_limit,
                       expires_after_minutes=minutes)
    require(caller, owners, file_ids=body.file_ids)
    for file_id in body.file_ids:  # 404 before anything is started
        files.get(file_id)
    sandbox = await sandboxes.create(caller.project, spec)
    try:
        for file_id in body.file_ids:
            await container_files.copy_in(sandbox.id, file_id)
    except BaseException:
        await manager.delete(sandbox.id)
        container_files.forget_container(sandbox.id)
        raise
    return ContainerObject.of(sandbox)


@router.get("", response_model=ListPage[ContainerObject])
async def list_containers(sandboxes: ProjectSandboxesDep, caller: CallerDep, after: str | None = None,
                          before: str | None = None,
                          limit: Annotated[int, Query(ge=1, le=100)] = 20,
                          order: Literal["asc", "desc"] = "desc", name: str | None = None) -> dict:
    # Sandboxes live in the engine, not the database: the one list paged in memory.
    listed = [s for s in await sandboxes.list(caller.scope) if name is None or s.name == name]
    items, has_more = paginate(listed, after=after, before=before, limit=limit, order=order)
    return page_of([ContainerObject.of(s) for s in items], has_more)


@router.get("/{container_id}", response_model=ContainerObject)
async def retrieve_container(container_id: str, manager: Manager) -> ContainerObject:
    return ContainerObject.of(await manager.get(container_id))


@router.delete("/{container_id}", response_model=Deleted)
async def delete_container(container_id: str, manager: Manager, container_files: ContainerFilesDep) -> Deleted:
    await manager.delete(container_id)
    container_files.forget_container(container_id)
    return Deleted(id=container_id, object="container.deleted")


@router.post("/{container_id}/interrupt", response_model=ContainerObject)
async def interrupt_container(container_id: str, manager: Manager) -> ContainerObject:
    await manager.interrupt(container_id)
    return ContainerObject.of(await manager.get(container_id))


@router.post("/{container_id}/restart", response_model=ContainerObject)
async def restart_container(container_id: str, manager: Manager,
                            sandboxes: ProjectSandboxesDep) -> ContainerObject:
    await sandboxes.wake(container_id)  # an expired sandbox starts again only within its project's limit
    return ContainerObject.of(await manager.restart(container_id))


@router.post("/{container_id}/execute", response_model=ExecutionObject,
             responses={200: {"content": EVENT_STREAM}})
async def execute(container_id: str, body: ExecuteRequest, interpreter: Interpreter,  # noqa: ANN201
                  request: Request):
    await interpreter.manager.get(container_id)
    interpreter.manager.check_timeout(body.timeout)
    run = _ExecutionRun(interpreter, container_id, body)
    if body.stream:
        return EventSourceResponse(run.events(), headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    return await run.result(request)


class _ExecutionRun:
    """One execution over HTTP: outputs are queued as they arrive, for a client reading the SSE stream."""

    def __init__(self, interpreter: Interpreter, container_id: str, body: ExecuteRequest) -> None:
        self._interpreter, self._container_id, self._body = interpreter, container_id, body
        self._queue: asyncio.Queue[WireOutput] = asyncio.Queue()

    async def _on_item(self, item: Item) -> None:
        await self._queue.put(output_wire(item))

    def _start(self) -> asyncio.Task[CellRun]:
        return asyncio.create_task(self._interpreter.run(self._container_id, self._body.code, self._body.timeout,
                                                         on_item=self._on_item))

    async def result(self, request: Request) -> Response:
        task = self._start()
        try:
            return json_response(execution_object(await unless_disconnected(request, task)))
        except asyncio.CancelledError:
            await cancel(task)
            raise

    async def events(self) -> AsyncIterator[bytes]:
        task = self._start()
        try:
            while not (task.done() and self._queue.empty()):
                getter = asyncio.ensure_future(self._queue.get())
                await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
                if getter.done():
                    yield _sse("execution.output", getter.result().model_dump())
                else:
                    getter.cancel()
            try:
                yield _sse("execution.completed", execution_object(task.result()).model_dump())
            except Exception as exc:
                status, body = envelope(exc)
                if status == 500:
                    log.exception("execution stream failed")
                yield _sse("error", body)
            yield format_sse_event(data_str="[DONE]")
        finally:
            if not task.done():  # the client went away: stop its cell, so the next call is not stuck behind it
                await cancel(task)


def _sse(event: str, payload: dict) -> bytes:
    return format_sse_event(data_str=json.dumps(payload), event=event)
