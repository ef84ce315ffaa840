"""Who is watching a run: the streams of `stream: true` requests. The run engine tells the hub each event after
the state it describes is saved; a stream sees the events of its run from when it was registered, in order, and
ends after the event that ends its request (a terminal status, or `requires_action`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

# The events after which a stream's request is over.
FINAL = {"thread.run.completed", "thread.run.failed", "thread.run.cancelled", "thread.run.incomplete",
         "thread.run.expired", "thread.run.requires_action"}

Event = tuple[str, dict[str, Any]]


class EventHub:
    def __init__(self) -> None:
        self._watchers: dict[str, list[asyncio.Queue[Event]]] = {}

    def add(self, run_id: str, queue: asyncio.Queue[Event]) -> None:
        self._watchers.setdefault(run_id, []).append(queue)

    def emit(self, run_id: str, event: str, data: dict[str, Any]) -> None:
        for queue in self._watchers.get(run_id, []):
            queue.put_nowait((event, data))
        if event in FINAL:
            self._watchers.pop(run_id, None)

    def forget(self, run_id: str, queue: asyncio.Queue[Event]) -> None:
        watchers = self._watchers.get(run_id, [])
        if queue in watchers:
            watchers.remove(queue)


async def until_final(queue: asyncio.Queue[Event]) -> AsyncIterator[Event]:
    """The events of one stream, the final one included."""
    while True:
        event = await queue.get()
        yield event
        if event[0] in FINAL:
            return
