"""Deciding when containers go: idle past their expiry, older than the maximum lifetime, or left behind.

Reclaimed sandboxes keep their files and ids; the next cell starts a fresh kernel and says so.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time

from orchestrator.sandbox import notices
from orchestrator.sandbox.host import SandboxHost
from orchestrator.sandbox.lifecycle import Lifecycle

log = logging.getLogger("toolshed.sandbox")


class Reaper:
    def __init__(self, lifecycle: Lifecycle) -> None:
        self._lifecycle = lifecycle
        self._slot_suspects: dict[str, float] = {}  # slot -> when it was first seen held by nothing

    def start(self, interval: float) -> None:
        """Reclaim idle and too-old sandboxes and sweep orphans every `interval` seconds, until close()."""

        async def loop() -> None:
            while True:
                await asyncio.sleep(interval)
                try:
                    await self.reap_idle()
                    await self.release_idle_disks()
                    await self.sweep_orphans()
                except Exception:
                    log.exception("reaping idle sandboxes failed")

        self._lifecycle.spawn(loop())

    async def reap_idle(self) -> list[str]:
        """Remove the containers of sandboxes idle past their expiry or older than the maximum lifetime; their
        files stay for rehydration. A sandbox running a cell is left alone until it is idle."""
        lifecycle = self._lifecycle
        now, now_mono = time.time(), time.monotonic()
        reaped = []
        for live in lifecycle.registry.all():
            sandbox = live.sandbox
            if now - sandbox.last_active_at >= sandbox.expires_after_minutes * 60:
                reclaimed = await lifecycle.reclaim(live, "idle", notices.expired(sandbox))
            elif now_mono - live.started >= lifecycle.policy.max_lifetime:
                reclaimed = await lifecycle.reclaim(live, "lifetime", notices.too_old(lifecycle.policy.max_lifetime))
            else:
                continue
            if reclaimed:
                reaped.append(sandbox.id)
        return reaped

    async def release_idle_disks(self) -> None:
        """Unmount the disks of expired sandboxes that a read of their files mounted again, so an expired sandbox
        holds no loop device between uses. Under the sandbox's lock: a cell bringing it back mounts its own."""
        for live in self._lifecycle.registry.all():
            if live.sandbox.status != "expired" or live.lock.locked():
                continue
            async with live.lock:
                if live.sandbox.status == "expired" and self._lifecycle.registry.holds(live):
                    await asyncio.to_thread(self._lifecycle.host_of(live.sandbox.id).release, live.sandbox.id)

    async def sweep_orphans(self) -> list[str]:
        """Remove this namespace's containers that hold no slot: ones whose removal failed while the engine was
        down. Every container the manager means to keep holds a slot from before its creation. The reverse is
        reconciled too: a slot held by no running sandbox and no pooled one for longer than any start may take is
        given back, so the cap cannot shrink by accounting drift."""
        lifecycle = self._lifecycle
        slots = lifecycle.slots
        orphans = []
        for host in lifecycle.hosts.up():
            for labels in await asyncio.to_thread(host.runtime.list_labels):
                sandbox_id = labels["id"]
                # Re-checked after the listing: a start may have taken the slot meanwhile. A sandbox lost with a
                # host and placed elsewhere holds a slot, but not for the container its old host still runs.
                if not self._held(sandbox_id, host):
                    await asyncio.to_thread(host.runtime.remove, sandbox_id)
                    await self._drop_disk(host, sandbox_id)
                    orphans.append(sandbox_id)
                    log.info("removed an orphaned container", extra={"container_id": sandbox_id})
            # A remote sandbox's files outlive its container in a keeper: one left by a removal that failed goes.
            await asyncio.to_thread(host.prune, functools.partial(self._homed_on, host))
        accounted = {live.sandbox.id for live in lifecycle.registry.all() if live.sandbox.status == "running"}
        suspects = slots.held() - accounted - {item.sandbox.id for item in lifecycle.pool.items()}
        now = time.monotonic()
        self._slot_suspects = {sandbox_id: self._slot_suspects.get(sandbox_id, now) for sandbox_id in suspects}
        # A start in progress holds its slot before its sandbox counts as running: a slot is given back only once
        # held by nothing for longer than any start may take (a gVisor cold start under load took longer than two
        # sweeps of TOOLSHED_REAP_INTERVAL=1, and its live container was then removed as an orphan).
        settled = 2 * lifecycle.policy.kernel_start_timeout
        for sandbox_id, since in list(self._slot_suspects.items()):
            if now - since > settled:
                log.warning("gave back a sandbox slot nothing held", extra={"container_id": sandbox_id})
                lifecycle.slot_freed(sandbox_id)
                del self._slot_suspects[sandbox_id]
        return orphans

    def _homed_on(self, host: SandboxHost, sandbox_id: str) -> bool:
        return self._lifecycle.hosts.home_of(sandbox_id) is host

    def _held(self, sandbox_id: str, host: SandboxHost) -> bool:
        hosts = self._lifecycle.hosts
        return self._lifecycle.slots.holds(sandbox_id) and (not hosts.is_placed(sandbox_id)
                                                            or hosts.of(sandbox_id) is host)

    async def _drop_disk(self, host: SandboxHost, sandbox_id: str) -> None:
        """An orphan's disk goes with its container, or its loop device stays mounted for good: a known sandbox
        of this host (expired, files kept) only lets go of its mount; an unknown one (a lost pooled start) had no
        files."""
        lifecycle = self._lifecycle
        if sandbox_id in lifecycle.registry and lifecycle.host_of(sandbox_id) is host:
            await asyncio.to_thread(host.release, sandbox_id)
        else:
            await asyncio.to_thread(host.discard, sandbox_id)
