"""Following the container engine's events: a sandbox whose container stops while idle is reclaimed at once (so a
dead kernel is never handed a cell), and when the event stream breaks (the Docker engine restarted) every sandbox
is checked once the engine answers again. Runs in a daemon thread because the event stream blocks."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any

from orchestrator.sandbox import notices
from orchestrator.sandbox.host import SandboxHost
from orchestrator.sandbox.lifecycle import Lifecycle
from orchestrator.sandbox.reaper import Reaper
from orchestrator.sandbox.runtime import StopStream

log = logging.getLogger("toolshed.sandbox")


class EngineWatcher:
    """Follows one host's engine."""

    def __init__(self, lifecycle: Lifecycle, reaper: Reaper, host: SandboxHost) -> None:
        self._lifecycle = lifecycle
        self._reaper = reaper
        self._host = host
        self._stop = threading.Event()
        self._stream: StopStream | None = None

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        threading.Thread(target=self._watch, args=(loop,), name="toolshed-engine-events", daemon=True).start()

    def close(self) -> None:
        """Stop following the engine (at server stop). From then on nobody releases a sandbox's disk when its
        container goes: the manager closes the hosts next (SandboxHost.close), and each disk goes with its
        container."""
        self._stop.set()
        if self._stream is not None:
            self._stream.close()

    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        def on_loop(check: Coroutine[Any, Any, None]) -> None:
            asyncio.run_coroutine_threadsafe(check, loop).add_done_callback(_log_failure)

        connected_before = False
        while not self._stop.is_set():
            try:
                self._stream = stream = self._host.runtime.stopped_containers()
            except Exception:  # noqa: BLE001 - the engine is down; retry until it is back
                self._stop.wait(1.0)
                continue
            if connected_before:
                log.warning("the event stream of Docker engine %s was cut (engine restarted?); checking its "
                            "sandboxes", self._host.name)
                on_loop(self.check_all())
            connected_before = True
            for sandbox_id in stream:
                on_loop(self.check_stopped(sandbox_id))
            self._stop.wait(1.0)

    async def check_stopped(self, sandbox_id: str) -> None:
        lifecycle = self._lifecycle
        if lifecycle.host_of(sandbox_id) is not self._host:
            return  # a container a lost host still ran: the sandbox lives elsewhere now
        if sandbox_id in lifecycle.registry:
            await lifecycle.reclaim(lifecycle.registry.get(sandbox_id), "stopped", notices.STOPPED,
                                    unless_running=True)
        for pooled in lifecycle.pool.remove_where(lambda item: item.sandbox.id == sandbox_id):
            await lifecycle.abandon(pooled)

    async def check_all(self) -> None:
        lifecycle = self._lifecycle
        await self._reaper.sweep_orphans()
        for live in lifecycle.registry.all():
            if lifecycle.host_of(live.sandbox.id) is self._host:
                await lifecycle.reclaim(live, "stopped", notices.STOPPED, unless_running=True)
        running = {item.sandbox.id: await lifecycle.is_running(item.sandbox.id) for item in lifecycle.pool.items()
                   if lifecycle.host_of(item.sandbox.id) is self._host}
        for pooled in lifecycle.pool.remove_where(lambda item: not running.get(item.sandbox.id, True)):
            await lifecycle.abandon(pooled)
        lifecycle.pool.fill()


def _log_failure(future: Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("checking a stopped sandbox failed: %s", future.exception())
