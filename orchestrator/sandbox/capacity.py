"""The cap on live sandbox containers, with bounded backpressure.

Every container holds a slot from before it is created until it is removed. A caller that needs a slot when all
are held queues (first come, first served) and, at the head of the queue, asks the manager to make room: the
manager reclaims an idle sandbox (its files stay) or, if every sandbox is busy running a cell, the caller waits
for one to finish. Waiting is bounded: past `wait_s` the caller gets CapacityExhausted, a clear "try again" error
instead of a pile-up that takes the host down.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from orchestrator.sandbox.errors import CapacityExhausted


class Slots:
    def __init__(self, limit: int, wait_s: float) -> None:
        self.limit = limit
        self.wait_s = wait_s
        self._held: set[str] = set()
        self._queue = asyncio.Lock()
        self._changed = asyncio.Event()

    @property
    def used(self) -> int:
        return len(self._held)

    @property
    def waiting(self) -> bool:
        return self._queue.locked()

    def held(self) -> set[str]:
        return set(self._held)

    def holds(self, sandbox_id: str) -> bool:
        return sandbox_id in self._held

    def adopt(self, sandbox_id: str) -> None:
        """Count a container that already exists (found at recovery), even past the limit."""
        self._held.add(sandbox_id)

    def try_take(self, sandbox_id: str, *, spare: int = 0) -> bool:
        """Take a slot only if one is free now, leaving `spare` free, and nobody is queued for one."""
        if sandbox_id in self._held:
            return True
        if self.waiting or len(self._held) + 1 + spare > self.limit:
            return False
        self._held.add(sandbox_id)
        return True

    async def take(self, sandbox_id: str, make_room: Callable[[], Awaitable[bool]]) -> float:
        """Take a slot, waiting in line for one; returns the seconds waited. `make_room` frees a slot and returns
        True, or returns False when nothing can be freed yet (everything busy)."""
        if self.try_take(sandbox_id):
            return 0.0
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.wait_s):
                async with self._queue:
                    while len(self._held) >= self.limit:
                        if await make_room():
                            continue
                        # No await between the failed attempt and clear(): a release cannot slip in unseen.
                        self._changed.clear()
                        await self._changed.wait()
                    self._held.add(sandbox_id)
        except TimeoutError:
            raise CapacityExhausted(
                f"All {self.limit} sandboxes this server may run are busy executing code; none became free within "
                f"{self.wait_s:g} s. Retry shortly, or raise TOOLSHED_MAX_SANDBOXES.") from None
        return time.monotonic() - started

    def release(self, sandbox_id: str) -> None:
        self._held.discard(sandbox_id)
        self.changed()

    def changed(self) -> None:
        """Wake the caller at the head of the queue: a slot was freed or a sandbox became idle."""
        self._changed.set()
