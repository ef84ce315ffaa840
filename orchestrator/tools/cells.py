"""A finished cell as the faces show it: the engine's Execution, and its outputs as logs and image files (images
already stored as Files-API files), adjacent text merged as in an Assistants run step."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from orchestrator.sandbox.models import Execution


@dataclass(frozen=True)
class Logs:
    text: str


@dataclass(frozen=True)
class Image:
    file_id: str


Item = Logs | Image
ItemHook = Callable[[Item], Awaitable[None]]


@dataclass(frozen=True)
class CellRun:
    """A finished cell: the engine's Execution plus its outputs as logs and image files."""

    execution: Execution
    items: tuple[Item, ...]


def merge_logs(items: list[Item]) -> tuple[Item, ...]:
    """Adjacent text items become one."""
    merged: list[Item] = []
    for item in items:
        if isinstance(item, Logs) and merged and isinstance(merged[-1], Logs):
            merged[-1] = Logs(merged[-1].text + item.text)
        else:
            merged.append(item)
    return tuple(merged)
