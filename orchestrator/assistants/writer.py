"""An assistant message written as the model speaks: created (with its `message_creation` step) at the first
piece of text, grown by one delta per piece, completed with its annotations when the model is done."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from orchestrator.assistants.events import EventHub
from orchestrator.assistants.service import Assistants
from orchestrator.tools.annotations import Annotator

log = logging.getLogger("toolshed.runs")
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

    def finish(self, text: str, cut_short: bool = False) -> dict[str, Any] | None:
        """Complete the message: the whole text with its annotations, then an `image_file` part for each figure
        the run's code displayed since its last message. None if the model wrote no text.
        `cut_short`: the model hit its token limit mid-answer, so the message ends `incomplete` (max_tokens)."""
        if self.message is None:
            if not text:
                return None  # figures wait for the message that talks about them
            self._start()
        images = self._figures()
        assert self.message is not None
        figures = [{"type": "image_file", "image_file": {"file_id": file_id}} for file_id in images]
        if figures:
            parts = [{"index": index, **part} for index, part in enumerate(figures, start=1)]
            self._events.emit(self._run["id"], "thread.message.delta", {
                "id": self.message["id"], "object": "thread.message.delta", "delta": {"content": parts}})
        now = int(time.time())
        ending = ({"status": "incomplete", "incomplete_at": now, "incomplete_details": {"reason": "max_tokens"}}
                  if cut_short else {"status": "completed", "completed_at": now})
        self.message = self._assistants.objects.replace("messages", {
            **self.message, **ending, "content": [self._text_part(text), *figures]})
        self._events.emit(self._run["id"], f"thread.message.{self.message['status']}", self.message)
        return self.message

    def _figures(self) -> list[str]:
        """The file ids of the images the run's code_interpreter steps showed after the run's last message (this
        message's own step aside: it opened before the turn's tool calls ran)."""
        images: list[str] = []
        for step in self._assistants.objects.steps(self._run["id"]):
            details = step["step_details"]
            if details["type"] == "message_creation" and step["id"] != (self.step or {}).get("id"):
                images.clear()
            for call in details.get("tool_calls", []):
                images += [output["image"]["file_id"] for output in call.get("code_interpreter", {}).get("outputs", [])
                           if output["type"] == "image"]
        return images

    def _text_part(self, text: str) -> dict[str, Any]:
        found = self._annotator.annotate(self._scope, self._run["thread_id"], text)
        for marker in found.unresolved:
            log.warning("the answer's marker %s cites nothing: %s", marker.text, marker.reason)
        annotations: list[dict[str, Any]] = [
            {"type": "file_path", "text": a.text, "start_index": a.start_index, "end_index": a.end_index,
             "file_path": {"file_id": a.file_id}} for a in found.file_paths]
        annotations += [{"type": "file_citation", "text": a.text, "start_index": a.start_index,
                         "end_index": a.end_index,
                         # The cited passage beside the file: Assistants v1 shows it as `quote` (v2 clients
                         # ignore the key).
                         "file_citation": {"file_id": a.source.file_id, "quote": a.source.quote}}
                        for a in found.citations]
        annotations.sort(key=lambda a: a["start_index"])
        return {"type": "text", "text": {"value": text, "annotations": annotations}}
