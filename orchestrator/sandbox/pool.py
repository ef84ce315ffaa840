"""A warm pool: sandboxes started ahead of need (kernel ready, scientific stack imported), handed out by create().

Taking one costs a dictionary update instead of a container start; the pool refills in the background, a few
starts at a time. An empty pool is never an error: create() falls back to a cold start.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

log = logging.getLogger("toolshed.sandbox")
T = TypeVar("T")
REFILL_DELAY_S = 1.0
# Pooled starts running at once. A start is mostly CPU (bench/speed_breakdown.py: ~1.8 CPU-s under runsc, ~0.5
# under runc): started together, N starts share the cores and all come ready late together (50 at once on 2 cores:
# half of them ready only after 38 s under runsc); two at a time, the first is ready after about one start's time.
REFILL_AT_ONCE = 2


class NoRoom(Exception):
    """Raised by `start` when no sandbox may be started for the pool now; not an error, the pool retries later."""


class WarmPool(Generic[T]):
    def __init__(self, size: int, start: Callable[[], Awaitable[T]], discard: Callable[[T], Awaitable[None]],
                 at_once: int = REFILL_AT_ONCE) -> None:
        self.size = size
        self._start = start
        self._discard = discard
        self._ready: list[T] = []
        # Counts the starts queued behind the gate too, so fill() never asks for more than the pool is short of.
        self._starting = 0
        self._gate = asyncio.Semaphore(at_once)
        self._tasks: set[asyncio.Task[None]] = set()
        self.hits = 0
        self.misses = 0

    @property
    def ready(self) -> int:
        return len(self._ready)

    def take(self) -> T | None:
        """A ready sandbox, or None (the caller starts one cold); either way the pool refills."""
        item = self._ready.pop(0) if self._ready else None
        if item is None:
            self.misses += 1
            self.fill()
        else:
            self.hits += 1
            # Starting a container takes both cores for a moment; let the caller's first cell run first.
            asyncio.get_running_loop().call_later(REFILL_DELAY_S, self.fill)
        return item

    def take_for_room(self) -> T | None:
        """A ready sandbox to be removed so its slot goes to somebody else (not a hit; no refill)."""
        return self._ready.pop() if self._ready else None

    def items(self) -> list[T]:
        return list(self._ready)

    def remove_where(self, dead: Callable[[T], bool]) -> list[T]:
        """Take the ready sandboxes `dead` selects out of the pool (the caller discards them)."""
        gone = [item for item in self._ready if dead(item)]
        # In place, never rebinding the list: anything holding it (a start about to add to it) keeps seeing it.
        self._ready[:] = [item for item in self._ready if not dead(item)]
        return gone

    def fill(self) -> None:
        """Start as many sandboxes as the pool is short of, in the background."""
        while self._starting + len(self._ready) < self.size:
            self._starting += 1
            task = asyncio.create_task(self._add_one())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _add_one(self) -> None:
        try:
            async with self._gate:
                # Awaited before the list is looked up: `self._ready.append(await ...)` would add to the list as it
                # was when the start began (issue 27 item 13: a sandbox lost to the pool, reaped later as an orphan).
                item = await self._start()
            if len(self._ready) >= self.size:  # closed (or shrunk) while it started: nobody will take it
                await self._discard(item)
                return
            self._ready.append(item)
        except NoRoom:
            pass
        except Exception:
            log.exception("could not start a pooled sandbox")
        finally:
            self._starting -= 1

    async def close(self) -> None:
        """Stop filling and remove the idle pooled sandboxes (they hold nobody's files)."""
        self.size = 0
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        ready, self._ready = self._ready, []
        for item in ready:
            await self._discard(item)
