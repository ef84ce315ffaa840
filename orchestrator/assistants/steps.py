"""A run's steps: opened as `in_progress` (with their `created` and `in_progress` events), grown by deltas,
completed with their details and usage, and ended with the run when it stops early."""

from __future__ import annotations

import time
from typing import Any

from orchestrator.assistants.events import EventHub
from orchestrator.assistants.store import ObjectStore
from retrieval.ids import new_id

# A run's ending and the stamp an unfinished step gets with it.
_ENDED_STEP = {"cancelled": "cancelled_at", "failed": "failed_at", "expired": "expired_at"}


def usage_of(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


class StepLog:
    def __init__(self, objects: ObjectStore, events: EventHub) -> None:
        self._objects = objects
        self._events = events

    def open(self, run: dict[str, Any], kind: str, details: dict[str, Any]) -> dict[str, Any]:
        step = {"id": new_id("step_", 12), "object": "thread.run.step", "created_at": int(time.time()),
                "assistant_id": run["assistant_id"], "thread_id": run["thread_id"], "run_id": run["id"],
                "type": kind, "status": "in_progress", "step_details": details, "last_error": None,
                "expired_at": None, "cancelled_at": None, "failed_at": None, "completed_at": None, "metadata": {},
                "usage": None}
        self._objects.insert("run_steps", step, run_id=run["id"])
        self._events.emit(run["id"], "thread.run.step.created", step)
        self._events.emit(run["id"], "thread.run.step.in_progress", step)
        return step

    def delta(self, step: dict[str, Any], call: dict[str, Any]) -> None:
        """One increment of a tool_calls step: `call` carries its `index` in the step's tool_calls."""
        self._events.emit(step["run_id"], "thread.run.step.delta", {
            "id": step["id"], "object": "thread.run.step.delta",
            "delta": {"step_details": {"type": "tool_calls", "tool_calls": [call]}}})

    def finish(self, step: dict[str, Any], details: dict[str, Any], usage: dict[str, int]) -> None:
        done = self._objects.replace("run_steps", {**step, "status": "completed", "completed_at": int(time.time()),
                                                   "step_details": details, "usage": usage})
        self._events.emit(step["run_id"], "thread.run.step.completed", done)

    def end_open(self, run: dict[str, Any]) -> None:
        """The run stopped early: its unfinished steps end with it (cancelled, failed or expired)."""
        stamp = _ENDED_STEP.get(run["status"])
        if stamp is None:
            return
        for step in self._objects.open_steps(run["id"]):
            ended = self._objects.replace("run_steps", {**step, "status": run["status"], stamp: int(time.time()),
                                                        "last_error": run["last_error"]})
            self._events.emit(run["id"], f"thread.run.step.{run['status']}", ended)
