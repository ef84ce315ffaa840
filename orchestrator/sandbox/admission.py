"""Which cells run now: a first-come, first-served run queue in front of the kernels, with a time quantum.

With more busy sandboxes than cores, letting every cell start at once makes the kernels share the CPU: each one
runs slower, they all finish late together, and which ones finish last is up to the scheduler (50 trivial cells
at once on 2 cores: p99 ~2.4x the mean). Here at most `slots` cells start at once and the rest wait in arrival
order, so a cell waits for the ones ahead of it and no longer. A cell still running after `quantum` seconds gives
its slot up and runs on outside the queue, so a long cell never holds the queue up for more than one quantum.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class RunQueue:
    """At most `slots` young cells at once, admitted in arrival order (asyncio.Semaphore wakes waiters FIFO)."""

    def __init__(self, slots: int, quantum: float) -> None:
        if slots < 1 or quantum <= 0:
            raise ValueError("a run queue needs at least one slot and a positive quantum")
        self._slots = asyncio.Semaphore(slots)
        self._quantum = quantum

    @asynccontextmanager
    async def admitted(self) -> AsyncIterator[None]:
        """Wait for a slot; hold it for the cell's first `quantum` seconds at most."""
        await self._slots.acquire()
        held = True

        def give_up() -> None:
            nonlocal held
            if held:
                held = False
                self._slots.release()

        expiry = asyncio.get_running_loop().call_later(self._quantum, give_up)
        try:
            yield
        finally:
            expiry.cancel()
            give_up()
