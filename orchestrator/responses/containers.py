"""Which container a response's code runs in: the one its `code_interpreter` tool names (a Containers API id), or,
for `{"type": "auto"}`, the container of the last code_interpreter_call in its context while that container
runs, else a new one of the project's, made on the first call with the tool's `file_ids` in /mnt/data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orchestrator.errors import InvalidRequest, NotFound
from orchestrator.sandbox import SandboxManager, SandboxNotFound, SandboxSpec
from orchestrator.services.container_files import ContainerFiles
from orchestrator.services.project_sandboxes import ProjectSandboxes
from orchestrator.services.projects import Caller, Owners

MEMORY = {"1g", "4g", "16g", "64g"}


@dataclass
class ContainerChoice:
    """The code_interpreter tool of one response: `fixed` is the container the call must use, if known yet."""

    project: str
    file_ids: list[str] = field(default_factory=list)
    memory_limit: str = "1g"
    fixed: str | None = None


class ResponseContainers:
    def __init__(self, manager: SandboxManager, sandboxes: ProjectSandboxes, container_files: ContainerFiles,
                 owners: Owners) -> None:
        self._manager = manager
        self._sandboxes = sandboxes
        self._container_files = container_files
        self._owners = owners

    async def choose(self, tool: dict[str, Any], caller: Caller, context: list[dict[str, Any]],
                     param: str) -> ContainerChoice:
        """The container a code_interpreter tool definition asks for, checked before the response starts."""
        container = tool.get("container")
        project = caller.project
        if isinstance(container, str):
            if not self._owners.sees(caller, container):
                raise NotFound(f"Container with id '{container}' not found.")
            try:
                sandbox = await self._manager.get(container)
            except SandboxNotFound as exc:
                raise NotFound(f"Container with id '{container}' not found.") from exc
            if sandbox.status != "running":
                raise InvalidRequest(f"Container {container} is {sandbox.status}; create a new one.", param=param)
            return ContainerChoice(project, fixed=container)
        if not isinstance(container, dict) or container.get("type") != "auto":
            raise InvalidRequest("code_interpreter needs `container`: a container id or {\"type\": \"auto\"}.",
                                 param=param)
        memory = container.get("memory_limit") or "1g"
        if memory not in MEMORY:
            raise InvalidRequest(f"memory_limit must be one of {', '.join(sorted(MEMORY))}.",
                                 param=f"{param}.memory_limit")
        file_ids = list(container.get("file_ids") or [])
        for file_id in file_ids:
            if not self._owners.sees(caller, file_id):
                raise NotFound(f"No such File object: {file_id}")
        return ContainerChoice(project, file_ids, memory, await self._running(context, project))

    async def _running(self, context: list[dict[str, Any]], project: str) -> str | None:
        """The container of the context's last code_interpreter_call, if it is still the project's and runs."""
        for item in reversed(context):
            container_id = item.get("container_id") if item.get("type") == "code_interpreter_call" else None
            if not container_id:
                continue
            try:
                sandbox = await self._manager.get(container_id)
            except SandboxNotFound:
                return None
            running = sandbox.status == "running" and self._owners.owner(container_id) == project
            return container_id if running else None
        return None

    def binder(self, choice: ContainerChoice) -> ChoiceBinder:
        return ChoiceBinder(self, choice)

    async def start(self, choice: ContainerChoice) -> str:
        sandbox = await self._sandboxes.create(choice.project, SandboxSpec(name="auto",
                                                                           memory_limit=choice.memory_limit))
        for file_id in choice.file_ids:
            await self._container_files.copy_in(sandbox.id, file_id)
        return sandbox.id


class ChoiceBinder:
    """The tools' SandboxBinder for one response: every call runs in the chosen container, started on first use."""

    def __init__(self, containers: ResponseContainers, choice: ContainerChoice) -> None:
        self._containers = containers
        self._choice = choice

    async def sandbox_for(self, scope: str, key: str, file_ids: list[str], project: str) -> str:
        return await self.container()

    async def container(self) -> str:
        if self._choice.fixed is None:
            self._choice.fixed = await self._containers.start(self._choice)
        return self._choice.fixed
