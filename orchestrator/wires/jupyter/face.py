"""The Jupyter kernels API subset at /jupyter, as Open WebUI's code execution and AutoGen's Jupyter executor call
it: kernelspecs, kernels (list, start, get, delete, interrupt, restart) and the kernel's `channels` websocket.

Every kernel is a Toolshed sandbox of the caller's project (hardened container, /mnt/data, limits, expiry). The
token is an API key, given as Jupyter clients give it: `?token=`, `Authorization: token …` (or `Bearer …`).
Errors have Jupyter's shape, `{"message", "reason"}`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request, Response, WebSocket, status

from orchestrator.errors import NotFound
from orchestrator.sandbox import Sandbox, SandboxSpec
from orchestrator.sandbox.errors import SandboxNotFound
from orchestrator.services.container import Services
from orchestrator.services.projects import Caller
from orchestrator.web.auth import ServicesDep
from orchestrator.web.error_shape import shaped_route
from orchestrator.web.errors import APIError
from orchestrator.wires.jupyter.channels import KernelChannels

KERNEL_NAME = "python3"
KERNELSPECS = {"default": KERNEL_NAME, "kernelspecs": {KERNEL_NAME: {
    "name": KERNEL_NAME, "resources": {},
    "spec": {"argv": [], "display_name": "Python 3 (Toolshed sandbox)", "language": "python", "env": {},
             "metadata": {}, "interrupt_mode": "message"}}}}


def jupyter_error(status: int, message: str, _: str | None) -> dict[str, Any]:
    return {"message": message, "reason": HTTPStatus(status).phrase}


def token_caller(services: Services, headers: Mapping[str, str], query: Mapping[str, str]) -> Caller | None:
    keys = services.keys
    if keys.open:
        return Caller(admin=True)
    scheme, _, value = headers.get("authorization", "").partition(" ")
    token = value if scheme.lower() in ("token", "bearer") else query.get("token", "")
    return keys.caller(token.strip(), None) if token else None


async def caller(request: Request, services: ServicesDep) -> Caller:
    found = token_caller(services, request.headers, request.query_params)
    if found is None:
        raise APIError(403, "Forbidden: a valid token (an API key) is required.")
    return found


CallerDep = Annotated[Caller, Depends(caller)]
# Not in /openapi.json: that document is the OpenAI face's; this wire is specified by Jupyter.
router = APIRouter(prefix="/jupyter/api", route_class=shaped_route(jupyter_error), tags=["jupyter"],
                   include_in_schema=False)


async def _kernel(services: Services, who: Caller, kernel_id: str) -> Sandbox:
    """The caller's sandbox `kernel_id`, or Jupyter's 404."""
    if services.owners.sees(who, kernel_id):
        try:
            return await services.require_sandboxes().manager.get(kernel_id)
        except SandboxNotFound:
            pass
    raise NotFound(f"Kernel does not exist: {kernel_id}")


def kernel_model(sandbox: Sandbox) -> dict[str, Any]:
    return {"id": sandbox.id, "name": KERNEL_NAME, "connections": 0,
            "last_activity": datetime.fromtimestamp(sandbox.last_active_at, UTC).isoformat(),
            "execution_state": "idle" if sandbox.status == "running" else "starting"}


@router.get("")
async def about() -> dict[str, str]:
    return {"version": "2.0.0"}


@router.get("/kernelspecs")
async def kernelspecs(_: CallerDep) -> dict[str, Any]:
    return KERNELSPECS


@router.get("/kernels")
async def list_kernels(services: ServicesDep, who: CallerDep) -> list[dict[str, Any]]:
    sandboxes = await services.require_sandboxes().project_sandboxes.list(who.scope)
    return [kernel_model(s) for s in sandboxes]


@router.post("/kernels", status_code=status.HTTP_201_CREATED)
async def start_kernel(services: ServicesDep, who: CallerDep,
                       body: Annotated[dict[str, Any] | None, Body()] = None) -> dict[str, Any]:
    name = (body or {}).get("name") or KERNEL_NAME
    if name != KERNEL_NAME:
        raise APIError(404, f"No such kernel spec: {name} (this server has {KERNEL_NAME}).")
    sandboxes = services.require_sandboxes()
    spec = SandboxSpec(name="jupyter kernel", memory_limit=services.settings.default_memory_limit)
    limit = services.settings.limits_of(who.project).jupyter_kernels
    return kernel_model(await sandboxes.project_sandboxes.create(who.project, spec, same_name_limit=limit))


@router.get("/kernels/{kernel_id}")
async def get_kernel(kernel_id: str, services: ServicesDep, who: CallerDep) -> dict[str, Any]:
    return kernel_model(await _kernel(services, who, kernel_id))


@router.delete("/kernels/{kernel_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_kernel(kernel_id: str, services: ServicesDep, who: CallerDep) -> Response:
    await _kernel(services, who, kernel_id)
    sandboxes = services.require_sandboxes()
    await sandboxes.manager.delete(kernel_id)
    sandboxes.container_files.forget_container(kernel_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/kernels/{kernel_id}/interrupt", status_code=status.HTTP_204_NO_CONTENT)
async def interrupt_kernel(kernel_id: str, services: ServicesDep, who: CallerDep) -> Response:
    await _kernel(services, who, kernel_id)
    await services.require_sandboxes().manager.interrupt(kernel_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/kernels/{kernel_id}/restart")
async def restart_kernel(kernel_id: str, services: ServicesDep, who: CallerDep) -> dict[str, Any]:
    await _kernel(services, who, kernel_id)
    sandboxes = services.require_sandboxes()
    await sandboxes.project_sandboxes.wake(kernel_id)
    return kernel_model(await sandboxes.manager.restart(kernel_id))


@router.websocket("/kernels/{kernel_id}/channels")
async def channels(websocket: WebSocket, kernel_id: str) -> None:
    services: Services = websocket.app.state.services
    who = token_caller(services, websocket.headers, websocket.query_params)
    if who is None:
        await websocket.close(code=1008, reason="a valid token (an API key) is required")  # a 403 before upgrade
        return
    try:
        await _kernel(services, who, kernel_id)
    except NotFound:
        await websocket.close(code=1008, reason=f"Kernel does not exist: {kernel_id}")
        return
    await websocket.accept()

    def allowed() -> bool:
        """Whether the socket's token still acts for whom it did at the handshake: a revoked key's next message
        closes the socket (a kernel deleted meanwhile is the engine's to answer, as SandboxNotFound)."""
        return token_caller(services, websocket.headers, websocket.query_params) == who

    await KernelChannels(websocket, services.require_sandboxes().interpreter, kernel_id, allowed=allowed,
                         max_queued=services.settings.jupyter_queued_cells).serve()
