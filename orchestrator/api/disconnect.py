"""Stop work a client no longer waits for: Starlette does not cancel a plain (non-streaming) request handler
when its client goes away, so a long cell would keep its sandbox busy and block the next call behind it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from fastapi import Request

T = TypeVar("T")
_POLL_SECONDS = 0.25


async def unless_disconnected(request: Request, task: asyncio.Task[T],
                              on_disconnect: Callable[[], Awaitable[None]]) -> T:
    """The task's result; if the client disconnects first, `on_disconnect` runs (it should make the task end)."""
    stopped = False
    while True:
        done, _ = await asyncio.wait({task}, timeout=_POLL_SECONDS)
        if done:
            return task.result()
        if not stopped and await request.is_disconnected():
            stopped = True
            await on_disconnect()
