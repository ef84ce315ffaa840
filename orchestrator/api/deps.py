"""Request-scoped access to the service container, and the API-key check.

All are `async def` although none awaits: FastAPI runs a plain `def` dependency in its thread pool, a thread hop
per dependency per request that showed up as ~6% of the server's time on a trivial execute."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from fastapi import Depends, Request

from orchestrator.api.errors import APIError
from orchestrator.assistants.runner import Runs
from orchestrator.assistants.service import Assistants
from orchestrator.config import Settings
from orchestrator.container_files import ContainerFiles
from orchestrator.interpreter import Interpreter as InterpreterService
from orchestrator.keys import KeyRing
from orchestrator.project_sandboxes import ProjectSandboxes
from orchestrator.projects import Caller, Owners
from orchestrator.sandbox import SandboxManager
from orchestrator.services import SandboxServices, Services
from orchestrator.storage import FileStore
from orchestrator.tools.annotations import Annotator
from orchestrator.tools.registry import ToolRegistry
from orchestrator.vector_stores import VectorStores


async def services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(services)]


async def settings(services: ServicesDep) -> Settings:
    return services.settings


async def sandboxes(services: ServicesDep) -> SandboxServices:
    """The sandbox side, or a 503 saying why the engine did not start."""
    return services.require_sandboxes()


SandboxesDep = Annotated[SandboxServices, Depends(sandboxes)]


async def manager(side: SandboxesDep) -> SandboxManager:
    return side.manager


async def project_sandboxes(side: SandboxesDep) -> ProjectSandboxes:
    return side.project_sandboxes


async def interpreter(side: SandboxesDep) -> InterpreterService:
    return side.interpreter


async def container_files(side: SandboxesDep) -> ContainerFiles:
    return side.container_files


async def files(services: ServicesDep) -> FileStore:
    return services.files


async def vector_stores(services: ServicesDep) -> VectorStores:
    return services.vector_stores


async def assistants(services: ServicesDep) -> Assistants:
    return services.assistants


async def runs(services: ServicesDep) -> Runs:
    return services.runs


async def tools(services: ServicesDep) -> ToolRegistry:
    return services.tools


async def annotator(services: ServicesDep) -> Annotator:
    return services.annotator


async def caller(request: Request, services: ServicesDep) -> Caller:
    """The project a request acts for, from its bearer key; a 401 without a valid one. With no key anywhere the
    server is one trusted user's (on loopback only): an admin of the default project."""
    found = bearer_caller(services.keys, request.headers)
    if found is None:
        raise APIError(401, "Incorrect API key provided.", code="invalid_api_key")
    return found


def bearer_caller(keys: KeyRing, headers: Mapping[str, str]) -> Caller | None:
    """The caller an `Authorization: Bearer` key (and an admin's `OpenAI-Project`) names; None without a valid
    key. Open access (no key anywhere) is an admin of the default project."""
    if keys.open:
        return Caller(admin=True)
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return keys.caller(token, headers.get("openai-project")) if scheme.lower() == "bearer" else None


CallerDep = Annotated[Caller, Depends(caller)]


async def owners(services: ServicesDep) -> Owners:
    return services.owners


OwnersDep = Annotated[Owners, Depends(owners)]


Config = Annotated[Settings, Depends(settings)]
Manager = Annotated[SandboxManager, Depends(manager)]
ProjectSandboxesDep = Annotated[ProjectSandboxes, Depends(project_sandboxes)]
Interpreter = Annotated[InterpreterService, Depends(interpreter)]
ContainerFilesDep = Annotated[ContainerFiles, Depends(container_files)]
Files = Annotated[FileStore, Depends(files)]
VectorStoresDep = Annotated[VectorStores, Depends(vector_stores)]
Tools = Annotated[ToolRegistry, Depends(tools)]
AssistantsDep = Annotated[Assistants, Depends(assistants)]
RunsDep = Annotated[Runs, Depends(runs)]
AnnotatorDep = Annotated[Annotator, Depends(annotator)]
