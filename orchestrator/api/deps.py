"""The OpenAI face's request-scoped access to the services in the container (the caller and the container
itself are orchestrator.web.auth's).

All are `async def` although none awaits: FastAPI runs a plain `def` dependency in its thread pool, a thread hop
per dependency per request that showed up as ~6% of the server's time on a trivial execute."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from orchestrator.assistants.runner import Runs
from orchestrator.assistants.service import Assistants
from orchestrator.config import Settings
from orchestrator.sandbox import SandboxManager
from orchestrator.services.container import SandboxServices
from orchestrator.services.container_files import ContainerFiles
from orchestrator.services.interpreter import Interpreter as InterpreterService
from orchestrator.services.project_sandboxes import ProjectSandboxes
from orchestrator.services.storage import FileStore
from orchestrator.services.vector_stores import VectorStores
from orchestrator.tools.annotations import Annotator
from orchestrator.tools.registry import ToolRegistry
from orchestrator.web.auth import ServicesDep


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
