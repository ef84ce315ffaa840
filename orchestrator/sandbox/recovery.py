"""Adopting what a previous run of this namespace left behind: its containers, and the workspaces of sandboxes
whose containers were reclaimed (they come back as expired)."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace

from orchestrator.sandbox import notices
from orchestrator.sandbox.errors import EngineUnavailable
from orchestrator.sandbox.host import SandboxHost
from orchestrator.sandbox.lifecycle import Lifecycle
from orchestrator.sandbox.policy import MEMORY_LIMITS
from orchestrator.sandbox.registry import LiveSandbox, sandbox_from_labels

log = logging.getLogger("toolshed.sandbox")


async def recover(lifecycle: Lifecycle) -> list[str]:
    """Register every sandbox found on every host that answers; returns their ids. Kernels are reconnected lazily,
    at the first cell. EngineUnavailable, touching nothing, if another server of the namespace runs on this host."""
    try:
        # Before anything is listed: what is found is taken for a dead run's leftovers, and some of it removed.
        for host in lifecycle.hosts.all():
            await asyncio.to_thread(host.claim)
    except EngineUnavailable:
        lifecycle.connector.close()  # this engine will not run: no kernel is ever connected
        raise
    for host in lifecycle.hosts.all():
        try:
            await _recover_host(lifecycle, host)
        except EngineUnavailable as exc:
            if len(lifecycle.hosts.all()) == 1:
                raise
            # Its containers would otherwise be taken for orphans (no slot) and removed with their files.
            log.warning("sandbox host %s is not answering; nothing recovered from it: %s", host.name, exc)
            lifecycle.hosts.leave_out(host)
    return lifecycle.registry.ids()


async def _recover_host(lifecycle: Lifecycle, host: SandboxHost) -> None:
    now = int(time.time())
    registry = lifecycle.registry
    metas = {meta["id"]: meta for meta in await asyncio.to_thread(host.load_metas)}
    running = []
    for labels in await asyncio.to_thread(host.runtime.list_labels):
        if labels["id"] in metas:
            running.append(metas.pop(labels["id"]))  # handed out from the pool: its labels are stale
        elif labels.get("meta.pooled") == "true":
            await _discard(host, labels["id"])  # never handed out: nobody's files
        elif not await asyncio.to_thread(host.has_files, labels["id"]):
            # A container of this namespace whose files are not on this host: an earlier server's, started with
            # another TOOLSHED_DATA_DIR. Nothing here can serve it, so it goes; its files are not touched.
            log.warning("removing container %s of namespace %s: its files are not in this data dir (an earlier "
                        "server with another TOOLSHED_DATA_DIR?)", labels["id"], labels.get("namespace", "?"))
            await asyncio.to_thread(host.runtime.remove, labels["id"])
        else:
            running.append(labels)
    for labels, status in [(labels, "running") for labels in running] + \
            [(meta, "expired") for meta in metas.values()]:
        # Idle time is counted from now: the previous run's activity is unknown.
        sandbox = replace(sandbox_from_labels(labels), status=status, last_active_at=now)
        if sandbox.id in registry:
            continue
        lifecycle.hosts.home(sandbox.id, host, MEMORY_LIMITS.get(sandbox.memory_limit, 0))
        if status == "running":
            lifecycle.slots.adopt(sandbox.id)
            await asyncio.to_thread(host.adopt, sandbox.id)
        live = LiveSandbox(sandbox)
        registry.add(live)
        if status == "expired":
            live.unreported_reset = notices.expired(sandbox)


async def _discard(host: SandboxHost, sandbox_id: str) -> None:
    await asyncio.to_thread(host.runtime.remove, sandbox_id)
    await asyncio.to_thread(host.discard, sandbox_id)
