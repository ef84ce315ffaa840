"""Sandboxes as projects see them: each created for one project (its owner recorded), within that project's limit
on live sandboxes (an expired one woken by a call counts as much as a new one), and listed per project.

The global cap (`max_sandboxes`) is the engine's: at the cap it reclaims the project's own sandbox idle longest,
never another project's nor one running a cell, so one project's load cannot evict another project's sandbox.
A kind of sandbox may have its own per-project limit too (Jupyter kernels), counted by the spec's name.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from orchestrator.sandbox import Sandbox, SandboxManager, SandboxSpec
from orchestrator.services.projects import OverLimit, Owners
from orchestrator.services.sandbox_homes import SandboxHomes


class ProjectSandboxes:
    def __init__(self, manager: SandboxManager, owners: Owners, limit_of: Callable[[str], int | None],
                 homes: SandboxHomes) -> None:
        self._manager = manager
        self._owners = owners
        self._homes = homes
        self._limit_of = limit_of
        self._locks: dict[str, asyncio.Lock] = {}

    async def create(self, project: str, spec: SandboxSpec, *, same_name_limit: int | None = None) -> Sandbox:
        """A new sandbox of `project`'s; OverLimit (a 429) if the project already runs as many as it may, or
        already has `same_name_limit` sandboxes named as `spec` is (live or expired)."""
        limit = self._limit_of(project)
        if limit is None and same_name_limit is None:
            return await self._create(project, spec)
        # Check and create under one lock, so concurrent requests cannot both take the last place.
        async with self._locks.setdefault(project, asyncio.Lock()):
            if limit is not None:
                await self._check_room(project, limit)
            if same_name_limit is not None:
                await self._check_kind(project, spec.name, same_name_limit)
            return await self._create(project, spec)

    async def _check_kind(self, project: str, name: str, limit: int) -> None:
        held = sum(1 for s in await self.list(project) if s.name == name)
        if held >= limit:
            raise OverLimit(f"Project '{project}' may have {limit} sandboxes of the kind '{name}' and has {held}; "
                            "delete one first.")

    async def wake(self, sandbox_id: str) -> None:
        """Before a call uses a sandbox: an expired one of a limited project is started again here, within the
        limit (OverLimit past it); any other is left to the engine, which wakes it on use."""
        if (await self._manager.get(sandbox_id)).status != "expired":
            return
        project = self._owners.project_of(sandbox_id)
        limit = self._limit_of(project)
        if limit is None:
            return
        async with self._locks.setdefault(project, asyncio.Lock()):
            await self._check_room(project, limit)
            await self._manager.wake(sandbox_id)

    async def _check_room(self, project: str, limit: int) -> None:
        live = len(await self.list(project, running=True))
        if live >= limit:
            raise OverLimit(f"Project '{project}' may run {limit} sandboxes at once and runs {live}; delete a "
                            "container (or let one expire) first.")

    async def _create(self, project: str, spec: SandboxSpec) -> Sandbox:
        sandbox = await self._manager.create(spec, owner=project)
        self._owners.claim(project, sandbox.id)
        self._homes.record(sandbox.id)
        return sandbox

    async def list(self, scope: str | None, *, running: bool = False) -> list[Sandbox]:
        """The sandboxes of one project (every one for None), oldest first; only running ones if asked."""
        sandboxes = await self._manager.list()
        if scope is not None:
            owned = self._owners.ids(scope, "cntr_")
            sandboxes = [s for s in sandboxes if s.id in owned]
        return [s for s in sandboxes if s.status == "running"] if running else sandboxes
