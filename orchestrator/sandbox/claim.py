"""One server per sandbox namespace on a host: a lock on the namespace's run dir, held for the life of the process.

A second server given the same TOOLSHED_NAMESPACE on the same Docker engine would otherwise take the first's
containers for leftovers of a dead run and remove them (issue 27 item 15). The lock is an flock, so the kernel
drops it when the holder exits, however it exits: a killed server never leaves a stale claim behind.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import TextIO

from orchestrator.sandbox.errors import EngineUnavailable

LOCK_FILE = "server.lock"


def claim_namespace(run_root: Path, namespace: str) -> TextIO:
    """Lock `run_root` (the namespace's run dir) for this process; the lock lasts while the returned file is
    open. EngineUnavailable, naming the namespace and the holder, if another server holds it."""
    run_root.mkdir(parents=True, exist_ok=True)
    held = open(run_root / LOCK_FILE, "a+")  # noqa: SIM115 - kept open: the open file *is* the lock
    try:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        held.seek(0)
        holder = held.read().strip() or "?"
        held.close()
        raise EngineUnavailable(
            f"sandbox namespace '{namespace}' is in use by another Toolshed server on this host (pid {holder}); "
            "give this server its own TOOLSHED_NAMESPACE. That server's containers are left alone.") from None
    held.seek(0)
    held.truncate()
    held.write(f"{os.getpid()}\n")
    held.flush()
    return held
