"""Stop work a client no longer waits for: Starlette does not cancel a plain (non-streaming) request handler
when its client goes away, so a long cell would keep its sandbox busy and block the next call behind it.

The work is cancelled as a task, so the cancellation reaches exactly that work: a call still queued for its
sandbox never runs, and a running cell interrupts itself (never a cell of another caller)."""

from __future__ import annotations

import asyncio
from typing import TypeVar

from fastapi import Request

T = TypeVar("T")
_POLL_SECONDS = 0.25


class ClientDisconnected(Exception):
    """The client went away before its answer was ready; the work it asked for was cancelled."""


async def unless_disconnected(request: Request, task: asyncio.Task[T]) -> T:
    """The task's result; if the client disconnects first, the task is cancelled and waited for."""
    while True:
        done, _ = await asyncio.wait({task}, timeout=_POLL_SECONDS)
        if done:
            return task.result()
        if await request.is_disconnected():
            await cancel(task)
            raise ClientDisconnected


async def cancel(task: asyncio.Task[T]) -> None:
    """Cancel the task and wait until it has tidied up."""
    task.cancel()
    await asyncio.wait({task})
