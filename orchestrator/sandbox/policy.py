"""What the sandbox engine is configured with and who it tells: limits and timings, and the two seams through
which it reports (lifecycle events for metrics, files written for the file registry)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from orchestrator.sandbox.models import Collected

MEMORY_LIMITS = {"1g": 1 << 30, "4g": 4 << 30, "16g": 16 << 30, "64g": 64 << 30}


@dataclass(frozen=True)
class SandboxPolicy:
    """Limits and timings that apply to every sandbox."""

    cpus: float = 1.0
    pids: int = 256
    tmp_size: str = "256m"
    kernel_start_timeout: float = 60.0
    interrupt_grace: float = 1.0
    max_output_bytes: int = 1 << 20
    default_timeout: float = 120.0
    max_timeout: float = 3600.0
    pool_size: int = 0
    # Imported by a pooled sandbox while it waits (see Settings.pool_preload).
    pool_preload: tuple[str, ...] = ("numpy", "pandas")
    # Pooled sandboxes are started with this memory limit; other limits always start cold.
    pool_memory_limit: str = "1g"
    max_sandboxes: int = 64
    capacity_wait: float = 30.0
    # A container older than this is recycled at its next idle moment, so no kernel lives (and leaks) forever.
    max_lifetime: float = 24 * 3600.0
    # The largest kernel message frame the server accepts (see KernelConnector).
    max_message_bytes: int = 16 << 20
    # Cells started at once, in arrival order; each holds its slot for at most cell_quantum seconds (RunQueue).
    cell_slots: int = 4
    cell_quantum: float = 0.05


class LifecycleHooks(Protocol):
    """Told about lifecycle events, for metrics; the engine itself depends on no metrics library."""

    def acquired(self, source: str, seconds: float) -> None:
        """A sandbox became usable: source "pool", "cold" or "rehydrate"; seconds until its kernel answered."""

    def waited_for_capacity(self, seconds: float) -> None:
        """A container start took a slot under the cap after waiting this long (0 when one was free)."""

    def reclaimed(self, reason: str) -> None:
        """A container was reclaimed: reason "idle", "lifetime", "capacity", "stopped" or "host_lost"."""


class NoHooks:
    """LifecycleHooks that record nothing."""

    def acquired(self, source: str, seconds: float) -> None:
        pass

    def waited_for_capacity(self, seconds: float) -> None:
        pass

    def reclaimed(self, reason: str) -> None:
        pass


class ArtifactSink(Protocol):
    """Registers what a cell wrote under /mnt/data. Called after every cell, while the sandbox is still locked,
    so the next cell cannot change a file before it is registered."""

    async def collect(self, sandbox_id: str) -> Collected: ...


class NoArtifacts:
    """An ArtifactSink that registers nothing."""

    async def collect(self, sandbox_id: str) -> Collected:
        return Collected()
