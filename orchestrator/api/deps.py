"""Request-scoped access to the engines held by the app, and the API-key check."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Request

from orchestrator.api.errors import APIError
from orchestrator.config import Settings
from orchestrator.container_files import ContainerFiles
from orchestrator.interpreter import Interpreter as InterpreterService
from orchestrator.sandbox import EngineUnavailable, SandboxManager
from orchestrator.storage import FileStore
from orchestrator.tools.router import ToolRouter


def settings(request: Request) -> Settings:
    return request.app.state.settings


def _engine(request: Request) -> None:
    if request.app.state.manager is None:
        raise EngineUnavailable(request.app.state.engine_problem or "The sandbox engine is not running.")


def manager(request: Request) -> SandboxManager:
    _engine(request)
    return request.app.state.manager


def interpreter(request: Request) -> InterpreterService:
    _engine(request)
    return request.app.state.interpreter


def tool_router(request: Request) -> ToolRouter:
    _engine(request)
    return request.app.state.tool_router


def container_files(request: Request) -> ContainerFiles:
    _engine(request)
    return request.app.state.container_files


def files(request: Request) -> FileStore:
    return request.app.state.files


def require_api_key(request: Request) -> None:
    keys: list[str] = request.app.state.settings.api_keys
    if not keys:
        return
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not any(secrets.compare_digest(token, key) for key in keys):
        raise APIError(401, "Incorrect API key provided.", code="invalid_api_key")


Config = Annotated[Settings, Depends(settings)]
Manager = Annotated[SandboxManager, Depends(manager)]
Interpreter = Annotated[InterpreterService, Depends(interpreter)]
ContainerFilesDep = Annotated[ContainerFiles, Depends(container_files)]
Files = Annotated[FileStore, Depends(files)]
