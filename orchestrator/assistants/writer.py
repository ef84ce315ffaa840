"""An assistant message written as the model speaks: created (with its `message_creation` step) at the first
piece of text, grown by one delta per piece, completed with its annotations when the model is done."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from orchestrator.assistants.events import EventHub
from orchestrator.assistants.service import Assistants
from orchestrator.tools.annotations import Annotator

StepMaker = Callable[[dict[str, Any], str, dict[str, Any]], dict[str, Any]]


class MessageWriter:
    def __init__(self, run: dict[str, Any], assistants: Assistants, events: EventHub, annotator: Annotator,
                 new_step: StepMaker, scope: str) -> None:
        self._run, self._assistants, self._events, self._annotator = run, assistants, events, annotator
        self._new_step, self._scope = new_step, scope
        self.step: dict[str, Any] | None = None
        self.message: dict[str, Any] | None = None

    async def piece(self, text: str) -> None:
        if self.message is None:
            self._start()
        assert self.message is not None
        self._events.emit(self._run["id"], "thread.message.delta", {
            "id": self.message["id"], "object": "thread.message.delta",
            "delta": {"content": [{"index": 0, "type": "text", "text": {"value": text}}]}})

    def _start(self) -> None:
        run = self._run
        self.message = self._assistants.create_message(run["thread_id"], {
            "role": "assistant", "content": [], "metadata": {}, "assistant_id": run["assistant_id"],
            "run_id": run["id"], "status": "in_progress", "completed_at": None}, [], run_lock=False)
        self.step = self._new_step(run, "message_creation", {
            "type": "message_creation", "message_creation": {"message_id": self.message["id"]}})
        self._events.emit(run["id"], "thread.message.created", self.message)
        self._events.emit(run["id"], "thread.message.in_progress", self.message)

    def cut(self, reason: str) -> None:
        """The run ended mid-message (reason run_cancelled or run_failed): the message says so."""
        if self.message is None or self.message["status"] != "in_progress":
            return
        self.message = self._assistants.objects.replace("messages", {
            **self.message, "status": "incomplete", "incomplete_at": int(time.time()),
            "incomplete_details": {"reason": reason}})
        self._events.emit(self._run["id"], "thread.message.incomplete", self.message)

    def finish(self, text: str) -> dict[str, Any] | None:
        """Complete the message with the whole text and its annotations; None if the model wrote no text."""
        if self.message is None:
            if not text:
                return None
            self._start()
        assert self.message is not None
        found = self._annotator.annotate(self._scope, self._run["thread_id"], text)
        annotations: list[dict[str, Any]] = [
            {"type": "file_path", "text": a.text, "start_index": a.start_index, "end_index": a.end_index,
             "file_path": {"file_id": a.file_id}} for a in found.file_paths]
        annotations += [{"type": "file_citation", "text": a.text, "start_index": a.start_index,
                         "end_index": a.end_index, "file_citation": {"file_id": a.source.file_id}}
                        for a in found.citations]
        annotations.sort(key=lambda a: a["start_index"])
        self.message = self._assistants.objects.replace("messages", {
            **self.message, "status": "completed", "completed_at": int(time.time()),
            "content": [{"type": "text", "text": {"value": text, "annotations": annotations}}]})
        self._events.emit(self._run["id"], "thread.message.completed", self.message)
        return self.message
