"""Noticing a remote sandbox host that stops answering, and one that comes back (issue 33).

Every remote host is pinged (short timeout, in worker threads, all at once, so a hung host costs nobody else
time). A host that misses two checks in a row is down (a cell that finds its engine gone marks it down at once):
its idle sandboxes are lost (the next call gets a fresh sandbox elsewhere, and is told why); a running cell sees
it through its liveness probe. When the host
answers again, whatever it still runs of ours is removed. The local host is not watched: a local engine that
restarts is the engine watcher's job, and its sandboxes' files are still on this machine.
"""

from __future__ import annotations

import asyncio
import logging

from orchestrator.sandbox.host import SandboxHost
from orchestrator.sandbox.lifecycle import Lifecycle

log = logging.getLogger("toolshed.sandbox")
_MISSES_TO_DOWN = 2


class HostWatch:
    def __init__(self, lifecycle: Lifecycle) -> None:
        self._lifecycle = lifecycle
        self._misses: dict[str, int] = {}

    def start(self, interval: float) -> None:
        hosts = [host for host in self._lifecycle.hosts.all() if self._lifecycle.hosts.is_watched(host)]
        if not hosts:
            return

        async def loop() -> None:
            while True:
                await asyncio.sleep(interval)
                try:
                    await self.check(hosts)
                except Exception:
                    log.exception("checking the sandbox hosts failed")

        self._lifecycle.spawn(loop())

    async def check(self, hosts: list[SandboxHost]) -> None:
        answers = await asyncio.gather(*(asyncio.to_thread(host.alive) for host in hosts))
        for host, alive in zip(hosts, answers, strict=True):
            if alive:
                self._misses[host.name] = 0
                if self._lifecycle.hosts.is_down(host):
                    await self._clear(host)  # while still down: nothing is placed there meanwhile
                    self._lifecycle.hosts.mark_up(host)
                continue
            self._misses[host.name] = self._misses.get(host.name, 0) + 1
            if self._misses[host.name] >= _MISSES_TO_DOWN:
                self._lifecycle.hosts.mark_down(host)  # perhaps already, by a cell that found it gone
                await self.lose_all(host)

    async def lose_all(self, host: SandboxHost) -> None:
        """Every sandbox of a down host is lost; a busy one is left to its running cell, which sees the host
        down and loses it itself."""
        lifecycle, hosts = self._lifecycle, self._lifecycle.hosts
        for pooled in lifecycle.pool.remove_where(lambda item: hosts.home_of(item.sandbox.id) is host):
            pooled.close_session()
            hosts.forget(pooled.sandbox.id)
            lifecycle.slot_freed(pooled.sandbox.id)
        for live in lifecycle.registry.all():
            if hosts.home_of(live.sandbox.id) is not host or live.lock.locked():
                continue
            async with live.lock:
                if lifecycle.registry.holds(live) and hosts.home_of(live.sandbox.id) is host:
                    lifecycle.lose(live)

    async def _clear(self, host: SandboxHost) -> None:
        """A host back from the dead still runs what was lost with it: remove every container and file of ours
        there that no sandbox lives in now (nothing is placed on it until this is done)."""
        hosts = self._lifecycle.hosts
        for labels in await asyncio.to_thread(host.runtime.list_labels):
            if hosts.home_of(labels["id"]) is not host:
                await asyncio.to_thread(host.runtime.remove, labels["id"])
        await asyncio.to_thread(host.prune, lambda sandbox_id: hosts.home_of(sandbox_id) is host)
