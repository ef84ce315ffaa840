"""Request-scoped access to the engines held by the app, and the API-key check.

All are `async def` although none awaits: FastAPI runs a plain `def` dependency in its thread pool, a thread hop
per dependency per request that showed up as ~6% of the server's time on a trivial execute."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Request

from orchestrator.api.errors import APIError
from orchestrator.config import Settings
from orchestrator.container_files import ContainerFiles
from orchestrator.ingestion import IngestionQueue
from orchestrator.interpreter import Interpreter as InterpreterService
from orchestrator.sandbox import EngineUnavailable, SandboxManager
from orchestrator.storage import FileStore
from orchestrator.tools.router import ToolRouter
from retrieval.vector_store import VectorStoreEngine


async def settings(request: Request) -> Settings:
    return request.app.state.settings


def _engine_part(name: str) -> Callable[[Request], Awaitable[Any]]:
    """A dependency returning one piece of the sandbox engine, or a 503 if the engine did not start."""

    async def get(request: Request) -> Any:
        if request.app.state.manager is None:
            raise EngineUnavailable(request.app.state.engine_problem or "The sandbox engine is not running.")
        return getattr(request.app.state, name)

    return get


manager = _engine_part("manager")
interpreter = _engine_part("interpreter")
container_files = _engine_part("container_files")


async def tool_router(request: Request) -> ToolRouter:
    return request.app.state.tool_router


async def retrieval(request: Request) -> VectorStoreEngine:
    return request.app.state.retrieval


async def ingestion(request: Request) -> IngestionQueue:
    return request.app.state.ingestion


async def files(request: Request) -> FileStore:
    return request.app.state.files


async def require_api_key(request: Request) -> None:
    keys: list[str] = request.app.state.settings.api_keys
    if not keys:
        return
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not any(secrets.compare_digest(token, key) for key in keys):
        raise APIError(401, "Incorrect API key provided.", code="invalid_api_key")


Config = Annotated[Settings, Depends(settings)]
ToolRouterDep = Annotated[ToolRouter, Depends(tool_router)]
Manager = Annotated[SandboxManager, Depends(manager)]
Interpreter = Annotated[InterpreterService, Depends(interpreter)]
ContainerFilesDep = Annotated[ContainerFiles, Depends(container_files)]
Files = Annotated[FileStore, Depends(files)]
Retrieval = Annotated[VectorStoreEngine, Depends(retrieval)]
Ingestion = Annotated[IngestionQueue, Depends(ingestion)]
