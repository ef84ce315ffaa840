"""Adopting what a previous run of this namespace left behind: its containers, and the workspaces of sandboxes
whose containers were reclaimed (they come back as expired)."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace

from orchestrator.sandbox import notices
from orchestrator.sandbox.errors import EngineUnavailable
from orchestrator.sandbox.lifecycle import Lifecycle
from orchestrator.sandbox.registry import LiveSandbox, sandbox_from_labels

log = logging.getLogger("toolshed.sandbox")


async def recover(lifecycle: Lifecycle) -> list[str]:
    """Register every sandbox found; returns their ids. Kernels are reconnected lazily, at the first cell.
    EngineUnavailable, touching nothing, if another server of the namespace runs on this host."""
    now = int(time.time())
    workspaces, registry = lifecycle.workspaces, lifecycle.registry
    try:
        # Before anything is listed: what is found is taken for a dead run's leftovers, and some of it removed.
        await asyncio.to_thread(workspaces.claim, lifecycle.runtime.namespace)
    except EngineUnavailable:
        lifecycle.connector.close()  # this engine will not run: no kernel is ever connected
        raise
    metas = {meta["id"]: meta for meta in await asyncio.to_thread(workspaces.load_metas)}
    running = []
    for labels in await asyncio.to_thread(lifecycle.runtime.list_labels):
        if labels["id"] in metas:
            running.append(metas.pop(labels["id"]))  # handed out from the pool: its labels are stale
        elif labels.get("meta.pooled") == "true":
            await lifecycle.destroy(labels["id"])  # never handed out: nobody's files
        elif not workspaces.get(labels["id"]).root.exists():
            # A container of this namespace whose files are not in this data dir: an earlier server's, started
            # with another TOOLSHED_DATA_DIR. Nothing here can serve it, so it goes; its files are not touched.
            log.warning("removing container %s of namespace %s: its files are not in this data dir (an earlier "
                        "server with another TOOLSHED_DATA_DIR?)", labels["id"], labels.get("namespace", "?"))
            await asyncio.to_thread(lifecycle.runtime.remove, labels["id"])
        else:
            running.append(labels)
    for labels, status in [(labels, "running") for labels in running] + \
            [(meta, "expired") for meta in metas.values()]:
        # Idle time is counted from now: the previous run's activity is unknown.
        sandbox = replace(sandbox_from_labels(labels), status=status, last_active_at=now)
        if sandbox.id in registry:
            continue
        if status == "running":
            lifecycle.slots.adopt(sandbox.id)
            # After a host reboot the disk is no longer mounted; files must not be written beside it. An expired
            # sandbox's disk is mounted when its files are next used, so it holds no loop device meanwhile.
            await asyncio.to_thread(workspaces.ensure_mounted, workspaces.get(sandbox.id))
        live = LiveSandbox(sandbox)
        registry.add(live)
        if status == "expired":
            live.unreported_reset = notices.expired(sandbox)
    return registry.ids()
