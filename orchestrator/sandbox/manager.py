"""The sandbox engine's entry point: create, find, execute, interrupt, restart, delete, and start or stop the
background work (reaping, engine events). A facade over the parts that do each job:

    lifecycle   containers up and down (cold, pooled, restarted), reclaim with files kept, the slots under the cap
    execution   one cell at a time per sandbox, on a kernel made healthy first
    reaper      idle expiry, maximum lifetime, orphaned containers
    watcher     the container engine's events
    recovery    adopting a previous run's containers and workspaces

Each sandbox has one lock: cells on one sandbox never interleave, while different sandboxes run in parallel. A
sandbox whose container is reclaimed keeps its id and its /mnt/data; its next cell starts a fresh container and
kernel and says that in-memory state was reset.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import replace

from orchestrator.sandbox.capacity import Slots
from orchestrator.sandbox.errors import InvalidRequest
from orchestrator.sandbox.execution import Executor
from orchestrator.sandbox.host_watch import HostWatch
from orchestrator.sandbox.hosts import Hosts
from orchestrator.sandbox.lifecycle import Lifecycle
from orchestrator.sandbox.models import Execution, Sandbox, SandboxSpec
from orchestrator.sandbox.outputs import OutputHook
from orchestrator.sandbox.policy import (
    MEMORY_LIMITS,
    ArtifactSink,
    LifecycleHooks,
    NoArtifacts,
    NoHooks,
    SandboxPolicy,
)
from orchestrator.sandbox.pool import WarmPool
from orchestrator.sandbox.reaper import Reaper
from orchestrator.sandbox.recovery import recover
from orchestrator.sandbox.registry import LiveSandbox, labels_for, new_sandbox
from orchestrator.sandbox.watcher import EngineWatcher

log = logging.getLogger("toolshed.sandbox")


class SandboxManager:
    def __init__(self, hosts: Hosts, policy: SandboxPolicy, artifacts: ArtifactSink | None = None,
                 hooks: LifecycleHooks | None = None, owner_of: Callable[[str], str | None] | None = None) -> None:
        """`owner_of` names who a sandbox belongs to; at the cap, only the same owner's idle ones are reclaimed."""
        self._lifecycle = Lifecycle(hosts, policy, hooks or NoHooks(), owner_of)
        self._executor = Executor(self._lifecycle, artifacts or NoArtifacts())
        self._reaper = Reaper(self._lifecycle)
        self._watchers = [EngineWatcher(self._lifecycle, self._reaper, host) for host in hosts.all()]
        self._host_watch = HostWatch(self._lifecycle)
        self._policy = policy

    @property
    def slots(self) -> Slots:
        return self._lifecycle.slots

    @property
    def pool(self) -> WarmPool[LiveSandbox]:
        return self._lifecycle.pool

    # ---- background work -----------------------------------------------------------------------------------

    async def recover(self) -> list[str]:
        """Adopt what a previous run of this namespace left behind; returns the sandbox ids."""
        return await recover(self._lifecycle)

    def start_reaper(self, interval: float) -> None:
        self._reaper.start(interval)

    def start_watcher(self, host_check_interval: float = 2.0) -> None:
        """Follow every host's engine events, and notice a remote host that stops answering."""
        for watcher in self._watchers:
            watcher.start()
        self._host_watch.start(host_check_interval)

    async def reap_idle(self) -> list[str]:
        return await self._reaper.reap_idle()

    async def sweep_orphans(self) -> list[str]:
        return await self._reaper.sweep_orphans()

    async def close(self) -> None:
        """Disconnect from every kernel. Containers keep running, to be recovered by the next start; idle pooled
        ones are removed."""
        for watcher in self._watchers:
            watcher.close()
        await self._lifecycle.close()
        for host in self._lifecycle.hosts.all():  # after the sessions: a remote host's relays use its context
            host.close()

    async def engine_alive(self) -> bool:
        """Whether a container engine answers (with several hosts: any of them)."""
        answers = await asyncio.gather(*(asyncio.to_thread(host.alive) for host in self._lifecycle.hosts.all()))
        return any(answers)

    # ---- sandboxes -----------------------------------------------------------------------------------------

    async def create(self, spec: SandboxSpec, owner: str | None = None) -> Sandbox:
        """A sandbox with a ready kernel: from the warm pool when one fits, else started now (at the cap, making
        room among `owner`'s idle sandboxes)."""
        if spec.memory_limit not in MEMORY_LIMITS:
            raise InvalidRequest(
                f"memory_limit must be one of {', '.join(MEMORY_LIMITS)}; got '{spec.memory_limit}'.",
                param="memory_limit",
            )
        lifecycle = self._lifecycle
        started = time.monotonic()
        warm = lifecycle.pool.take() if spec.memory_limit == self._policy.pool_memory_limit else None
        live = warm or LiveSandbox(new_sandbox(spec.memory_limit))
        now_ns = time.time_ns()
        live.sandbox = replace(live.sandbox, name=spec.name, created_at=now_ns // 1_000_000_000,
                               created_ns=now_ns, last_active_at=now_ns // 1_000_000_000, labels=dict(spec.labels),
                               expires_after_minutes=spec.expires_after_minutes)
        sandbox = live.sandbox
        try:
            if warm is None:
                await lifecycle.start_container(live, owner=owner)
            await asyncio.to_thread(lifecycle.host_of(sandbox.id).save_meta, sandbox.id,
                                    {"id": sandbox.id, **labels_for(sandbox)})
        except BaseException:
            await lifecycle.abandon(live)
            raise
        live.last_used = time.monotonic()
        lifecycle.registry.add(live)
        lifecycle.hooks.acquired("pool" if warm else "cold", time.monotonic() - started)
        log.info("sandbox created (%s start)", "warm" if warm else "cold",
                 extra={"container_id": sandbox.id, "ms": round((time.monotonic() - started) * 1000, 1)})
        return live.sandbox

    async def get(self, sandbox_id: str) -> Sandbox:
        return self._lifecycle.registry.get(sandbox_id).sandbox

    async def list(self) -> list[Sandbox]:
        return sorted((live.sandbox for live in self._lifecycle.registry.all()), key=lambda s: (s.created_ns, s.id))

    def status_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for live in self._lifecycle.registry.all():
            counts[live.sandbox.status] = counts.get(live.sandbox.status, 0) + 1
        return counts

    async def delete(self, sandbox_id: str) -> None:
        """Remove the container and every file of the sandbox. A cell still running on it ends as failed."""
        live = self._lifecycle.registry.pop(sandbox_id)
        live.interrupt_requested = True
        live.close_session()
        await self._lifecycle.destroy(sandbox_id)

    # ---- cells ---------------------------------------------------------------------------------------------

    async def execute(self, sandbox_id: str, code: str, timeout: float | None = None,
                      on_output: OutputHook | None = None) -> Execution:
        """Run one cell. Errors in the code, timeouts, OOM and kernel death are reported in the Execution."""
        return await self._executor.execute(sandbox_id, code, timeout, on_output)

    async def interrupt(self, sandbox_id: str) -> None:
        """Interrupt the running cell, if any; it ends with status "interrupted"."""
        await self._executor.interrupt(sandbox_id)

    async def wake(self, sandbox_id: str) -> None:
        """Start an expired sandbox's kernel again now (its files are kept), as its next cell would."""
        live = self._lifecycle.registry.get(sandbox_id)
        async with live.lock:
            await self._executor.ensure_kernel(live)

    async def restart(self, sandbox_id: str) -> Sandbox:
        """Start a fresh kernel (in-memory state is lost, files are kept), after interrupting any running cell."""
        live = self._lifecycle.registry.get(sandbox_id)
        await self.interrupt(sandbox_id)
        async with live.lock:
            await self._lifecycle.restart_kernel(live, "restarted on request")
        return live.sandbox

    def check_timeout(self, timeout: float | None) -> float:
        """The timeout to use for a cell; InvalidRequest if it is out of range."""
        return self._executor.check_timeout(timeout)
