"""/v1/containers: the OpenAI Containers API, plus execute / interrupt / restart on a container's kernel."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from orchestrator.api import deps
from orchestrator.api.errors import APIError
from orchestrator.api.schemas import (
    ContainerCreate,
    ContainerObject,
    Deleted,
    ExecuteRequest,
    ExecutionObject,
    ImageFile,
    ImageOutputWire,
    ListPage,
    LogsOutput,
    WireOutput,
    execution_object,
    page_of,
    paginate,
)
from orchestrator.config import Settings
from orchestrator.sandbox import Execution, ImageOutput, SandboxError, SandboxManager, SandboxSpec
from orchestrator.sandbox.models import Output
from orchestrator.storage import FileStore

router = APIRouter(prefix="/containers", tags=["containers"])
Manager = Annotated[SandboxManager, Depends(deps.manager)]
Files = Annotated[FileStore, Depends(deps.files)]
Config = Annotated[Settings, Depends(deps.settings)]


@router.post("", response_model=ContainerObject)
async def create_container(body: ContainerCreate, manager: Manager, config: Config, files: Files) -> ContainerObject:
    if body.network_policy is not None and body.network_policy.type != "disabled":
        raise APIError(400, "Sandboxes never have network access; only network_policy type 'disabled' is "
                            "supported.", param="network_policy")
    minutes = body.expires_after.minutes if body.expires_after else 20
    spec = SandboxSpec(name=body.name, memory_limit=body.memory_limit or config.default_memory_limit,
                       labels={"expires_after_minutes": str(minutes)})
    stored = [files.get(file_id) for file_id in body.file_ids]  # 404 before anything is started
    sandbox = await manager.create(spec)
    try:
        for item in stored:
            await manager.put_file(sandbox.id, item.filename, files.blob_path(item.id))
    except BaseException:
        await manager.delete(sandbox.id)
        raise
    return ContainerObject.of(sandbox)


@router.get("", response_model=ListPage[ContainerObject])
async def list_containers(manager: Manager, after: str | None = None,
                          limit: Annotated[int, Query(ge=1, le=100)] = 20,
                          order: Literal["asc", "desc"] = "desc", name: str | None = None) -> dict:
    sandboxes = [s for s in await manager.list() if name is None or s.name == name]
    items, has_more = paginate(sandboxes, after=after, limit=limit, order=order)
    return page_of([ContainerObject.of(s) for s in items], has_more)


@router.get("/{container_id}", response_model=ContainerObject)
async def retrieve_container(container_id: str, manager: Manager) -> ContainerObject:
    return ContainerObject.of(await manager.get(container_id))


@router.delete("/{container_id}", response_model=Deleted)
async def delete_container(container_id: str, manager: Manager) -> Deleted:
    await manager.delete(container_id)
    return Deleted(id=container_id, object="container.deleted")


@router.post("/{container_id}/interrupt", response_model=ContainerObject)
async def interrupt_container(container_id: str, manager: Manager) -> ContainerObject:
    await manager.interrupt(container_id)
    return ContainerObject.of(await manager.get(container_id))


@router.post("/{container_id}/restart", response_model=ContainerObject)
async def restart_container(container_id: str, manager: Manager) -> ContainerObject:
    return ContainerObject.of(await manager.restart(container_id))


@router.post("/{container_id}/execute", response_model=ExecutionObject)
async def execute(container_id: str, body: ExecuteRequest, manager: Manager, files: Files):  # noqa: ANN201
    await manager.get(container_id)
    manager.check_timeout(body.timeout)
    run = _ExecutionRun(manager, files, container_id, body)
    if body.stream:
        return StreamingResponse(run.events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    return await run.result()


class _ExecutionRun:
    """One execution, converting engine outputs to wire outputs as they arrive (images become files)."""

    def __init__(self, manager: SandboxManager, files: FileStore, container_id: str, body: ExecuteRequest) -> None:
        self._manager, self._files, self._container_id, self._body = manager, files, container_id, body
        self._wire: list[WireOutput] = []
        self._queue: asyncio.Queue[WireOutput] = asyncio.Queue()

    async def _on_output(self, output: Output) -> None:
        wire = self._convert(output)
        self._wire.append(wire)
        await self._queue.put(wire)

    def _convert(self, output: Output) -> WireOutput:
        if isinstance(output, ImageOutput):
            extension = "png" if output.mime_type == "image/png" else "jpg"
            stored = self._files.write([output.data], f"image-{len(self._wire) + 1}.{extension}", "assistants_output")
            return ImageOutputWire(image=ImageFile(file_id=stored.id))
        return LogsOutput(logs=output.text)

    def _start(self) -> asyncio.Task[Execution]:
        return asyncio.create_task(self._manager.execute(self._container_id, self._body.code, self._body.timeout,
                                                         on_output=self._on_output))

    async def result(self) -> ExecutionObject:
        task = self._start()
        try:
            return execution_object(await asyncio.shield(task), self._wire)
        except asyncio.CancelledError:
            # The client went away: stop its cell so the next call on this container is not blocked behind it.
            await self._manager.interrupt(self._container_id)
            raise

    async def events(self) -> AsyncIterator[str]:
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
                execution = execution_object(task.result(), self._wire)
                yield _sse("execution.completed", execution.model_dump())
            except SandboxError as exc:
                yield _sse("error", {"error": {"message": str(exc), "type": "server_error", "param": None,
                                               "code": "execution_failed"}})
            yield "data: [DONE]\n\n"
        finally:
            if not task.done():
                await self._manager.interrupt(self._container_id)


def _sse(event: str, payload: dict) -> str:
    return f"event: {event}\ndata: {json.dumps(payload)}\n\n"
