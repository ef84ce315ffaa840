"""Bringing sandbox containers up and down: start (cold, pooled, or restarted), reclaim (files kept), destroy.

Every container holds a slot under the cap from before it is created until it is removed; at the cap a start
reclaims an idle sandbox of the same owner (a project, as `owner_of` tells), never another owner's. Docker calls
block, so they run in worker threads. This is the state the other parts of the engine share (registry, slots, pool).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import replace
from typing import Any

from orchestrator.sandbox import notices
from orchestrator.sandbox.capacity import Slots
from orchestrator.sandbox.errors import EngineUnavailable, SandboxNotFound, SandboxStartFailed
from orchestrator.sandbox.hardening import Limits
from orchestrator.sandbox.host import SandboxHost
from orchestrator.sandbox.hosts import Hosts
from orchestrator.sandbox.kernel import KernelConnector, KernelNotReady
from orchestrator.sandbox.policy import MEMORY_LIMITS, LifecycleHooks, SandboxPolicy
from orchestrator.sandbox.pool import NoRoom, WarmPool
from orchestrator.sandbox.registry import LiveSandbox, Registry, labels_for, new_sandbox
from orchestrator.sandbox.workspace import UnsafeRunDir

log = logging.getLogger("toolshed.sandbox")


def warm_up_code(modules: tuple[str, ...]) -> str:
    """A cell that imports `modules` into the interpreter's module cache from a throwaway namespace, so no name is
    bound in the user's, even when an import fails."""
    body = (f"import importlib\nfor name in {modules!r}:\n    try:\n        importlib.import_module(name)\n"
            "    except ImportError:\n        pass\n")
    return f"exec({body!r}, {{}})\n"


class Lifecycle:
    def __init__(self, hosts: Hosts, policy: SandboxPolicy, hooks: LifecycleHooks,
                 owner_of: Callable[[str], str | None] | None = None) -> None:
        self.hosts = hosts
        # Who a sandbox belongs to (None: nobody known); without it every idle sandbox may be reclaimed.
        self.owner_of = owner_of or (lambda _: None)
        self.policy = policy
        self.hooks = hooks
        self.registry = Registry()
        self.slots = Slots(policy.max_sandboxes, policy.capacity_wait)
        self.pool: WarmPool[LiveSandbox] = WarmPool(policy.pool_size, self.start_pooled, self.abandon)
        self.connector = KernelConnector(max_message_bytes=policy.max_message_bytes)
        self._background: set[asyncio.Task[None]] = set()

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` in the background until it ends or close() cancels it."""
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def close(self) -> None:
        """Disconnect from every kernel; containers keep running, to be recovered by the next start."""
        await self.pool.close()
        for task in self._background:
            task.cancel()
        for live in self.registry.all():
            live.close_session()
        self.connector.close()

    # ---- starting ------------------------------------------------------------------------------------------

    async def start_container(self, live: LiveSandbox, restart: bool = False, owner: str | None = None) -> None:
        """Start (or restart) the sandbox's container and wait for its kernel; the run dir is sealed after. At the
        cap it makes room among `owner`'s sandboxes (by default, the sandbox's own owner's). A sandbox whose host
        is down starts afresh on another."""
        sandbox = live.sandbox
        owner = owner if owner is not None else self.owner_of(sandbox.id)
        memory = MEMORY_LIMITS[sandbox.memory_limit]
        home = self.hosts.home_of(sandbox.id)
        host = await self.place(live, memory)
        # Its own host no longer holding its files (a host that was lost says so already, in its own words).
        if restart and host is home and not await asyncio.to_thread(host.has_files, sandbox.id):
            live.unreported_reset = notices.FILES_LOST
        connection = await asyncio.to_thread(host.prepare, sandbox.id)
        limits = Limits(memory, self.policy.cpus, self.policy.pids, self.policy.tmp_size)
        launch = functools.partial(host.launch, sandbox.id, limits=limits, labels=labels_for(sandbox),
                                   connection=connection)
        exists = restart and await self.container_exists(sandbox.id)
        if self.slots.holds(sandbox.id):
            await asyncio.to_thread(launch, replace=exists)
        else:  # a first start, or a sandbox that lost its slot with its host
            waited = await self.slots.take(sandbox.id, lambda: self.make_room(owner))
            self.hooks.waited_for_capacity(waited)
            try:
                await asyncio.to_thread(launch, replace=exists)
            except BaseException:
                self.slots.release(sandbox.id)
                raise
        live.started = time.monotonic()
        info, transport = await asyncio.to_thread(host.reach, sandbox.id, connection)
        live.session = self.connector.connect(info, transport)
        try:
            await live.session.wait_ready(self.policy.kernel_start_timeout, lambda: self.kernel_alive(live))
            # Only the image's own start-up has run in the container so far; from now on its code is hostile.
            await asyncio.to_thread(host.seal, sandbox.id, connection)
        except KernelNotReady as exc:
            raise SandboxStartFailed(f"the sandbox kernel did not start: {exc}") from exc
        except UnsafeRunDir as exc:
            raise SandboxStartFailed(f"the sandbox kernel's sockets are not as expected: {exc}") from exc
        live.sandbox = replace(live.sandbox, status="running", last_active_at=int(time.time()))

    async def restart_kernel(self, live: LiveSandbox, reason: str | None) -> None:
        live.close_session()
        live.needs_restart = reason
        await self.start_container(live, restart=True)
        live.needs_restart = None
        log.info("kernel restarted (%s)", reason or "fresh container", extra={"container_id": live.sandbox.id})

    async def start_pooled(self) -> LiveSandbox:
        """A sandbox for the pool: kernel ready and the heavy imports done, so a first cell runs at once."""
        live = LiveSandbox(new_sandbox(self.policy.pool_memory_limit, labels={"pooled": "true"}))
        # The pool never takes the last free slot, nor one somebody is waiting for.
        if not self.slots.try_take(live.sandbox.id, spare=1):
            raise NoRoom
        try:
            await self.start_container(live)
            assert live.session is not None
            warm_up = await live.session.execute(
                warm_up_code(self.policy.pool_preload), self.policy.kernel_start_timeout,
                interrupt_grace=self.policy.interrupt_grace, max_text_bytes=4096,
                is_alive=lambda: self.kernel_alive(live))
            # A kernel that died or hung in its warm-up would sit in the pool as ready until somebody took it.
            if warm_up.outcome not in ("ok", "error"):
                raise SandboxStartFailed(f"the pooled sandbox's warm-up cell ended: {warm_up.outcome}")
        except BaseException:
            await self.abandon(live)
            raise
        live.sandbox = replace(live.sandbox, labels={})
        self.slots.changed()  # a caller waiting under the cap may take this one's slot now
        return live

    def host_of(self, sandbox_id: str) -> SandboxHost:
        return self.hosts.of(sandbox_id)

    async def place(self, live: LiveSandbox, memory: int) -> SandboxHost:
        """The sandbox's host: its own while that is up; else (first start, or its host went down: it is lost,
        and told so) the host with the most memory left."""
        home = self.hosts.home_of(live.sandbox.id)
        if home is not None and not self.hosts.is_down(home):
            return home
        if home is not None:
            self.lose(live)
        for host in self.hosts.unmeasured():
            await asyncio.to_thread(self.hosts.measure, host)
        return self.hosts.place(live.sandbox.id, memory)

    async def container_exists(self, sandbox_id: str) -> bool:
        try:
            await asyncio.to_thread(self.host_of(sandbox_id).runtime.state, sandbox_id)
            return True
        except SandboxNotFound:
            return False

    async def is_running(self, sandbox_id: str) -> bool:
        try:
            return (await asyncio.to_thread(self.host_of(sandbox_id).runtime.state, sandbox_id)).running
        except SandboxNotFound:
            return False

    async def kernel_alive(self, live: LiveSandbox) -> bool:
        """Whether the sandbox's kernel may still answer: its host up, and its transport open (the exec carrying it
        ends with the kernel), or with none, its container running. An engine that does not answer (restarting) is
        no answer: whoever waits on the kernel (a cell, a start) waits on, and the engine's word once it is back
        decides, so a cell cut by an engine restart ends as KernelDied, and a start cut by one removes its own
        container, not a 503 that leaves the container for an orphan sweep."""
        session, host = live.session, self.host_of(live.sandbox.id)
        if session is None or self.hosts.is_down(host):
            return False
        if session.transport is not None:
            return session.transport.open
        try:
            return await self.is_running(live.sandbox.id)
        except EngineUnavailable:
            return True

    # ---- stopping ------------------------------------------------------------------------------------------

    async def reclaim(self, live: LiveSandbox, reason: str, notice: str, *, unless_running: bool = False) -> bool:
        """Remove an idle sandbox's container, keeping its files; False if it is busy or already gone (or, with
        `unless_running`, if its container is running: a stop seen in an event may have been our own restart).
        A busy sandbox is left alone: its running cell notices a dead kernel by itself."""
        # An unlocked asyncio.Lock is acquired without yielding, so "idle" cannot change in between.
        if live.sandbox.status != "running" or live.lock.locked():
            return False
        async with live.lock:
            if not self.registry.holds(live):
                return False
            if unless_running and await self.is_running(live.sandbox.id):
                return False
            live.close_session()
            host = self.host_of(live.sandbox.id)
            await asyncio.to_thread(host.runtime.remove, live.sandbox.id)
            await asyncio.to_thread(host.release, live.sandbox.id)
            self.slot_freed(live.sandbox.id)
            live.needs_restart = None
            live.sandbox = replace(live.sandbox, status="expired")
            live.unreported_reset = notice
        self.hooks.reclaimed(reason)
        log.info("sandbox reclaimed (%s)", reason, extra={"container_id": live.sandbox.id})
        return True

    async def make_room(self, owner: str | None = None) -> bool:
        """Free one slot for a container start: a pooled sandbox first (nobody's), else the sandbox idle longest
        among `owner`'s (any owner's if None). Another owner's live sandbox is never reclaimed: one project's load
        must not cost another project its kernel's state (issue 27 item 8)."""
        pooled = self.pool.take_for_room()
        if pooled is not None:
            await self.abandon(pooled)
            return True
        idle = sorted((live for live in self.registry.all()
                       if live.sandbox.status == "running" and not live.lock.locked()
                       and (owner is None or self.owner_of(live.sandbox.id) == owner)),
                      key=lambda live: live.last_used)
        for live in idle:
            if await self.reclaim(live, "capacity", notices.evicted(self.slots.limit)):
                return True
        return False

    def lose(self, live: LiveSandbox) -> None:
        """The sandbox's host stopped answering: its container, kernel and files are out of reach. Its slot goes
        back and its home is forgotten, so its next start is a fresh sandbox on a host that answers."""
        live.close_session()
        self.hosts.forget(live.sandbox.id)
        self.slot_freed(live.sandbox.id)
        live.needs_restart = None
        live.sandbox = replace(live.sandbox, status="expired")
        live.unreported_reset = notices.HOST_LOST
        self.hooks.reclaimed("host_lost")

    async def abandon(self, live: LiveSandbox) -> None:
        """Tear down a sandbox nobody was given: its kernel connection, container and files."""
        live.close_session()
        await self.destroy(live.sandbox.id)

    async def destroy(self, sandbox_id: str) -> None:
        """Remove a sandbox's container and files, and give back its slot."""
        host = self.host_of(sandbox_id)
        try:
            await asyncio.to_thread(host.runtime.remove, sandbox_id)
            await asyncio.to_thread(host.discard, sandbox_id)
        finally:
            self.hosts.forget(sandbox_id)
            self.slot_freed(sandbox_id)

    def slot_freed(self, sandbox_id: str) -> None:
        self.slots.release(sandbox_id)
        self.pool.fill()
