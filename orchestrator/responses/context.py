"""What a response's model sees: the chain of stored responses behind `previous_response_id` (each one's input
and output, oldest first) or the items of its `conversation`, then the request's own input, every id in it
checked against the caller's project."""

from __future__ import annotations

import base64
import mimetypes
from dataclasses import dataclass, field
from typing import Any

from orchestrator.errors import InvalidRequest, NotFound
from orchestrator.responses.items import check_outputs, normalize, to_messages
from orchestrator.responses.store import ResponseNotFound, ResponseStore
from orchestrator.services.projects import Caller, Owners
from orchestrator.services.storage import FileStore

# The largest image a request may show its model (sent inline, as OpenAI's vision input limit).
MAX_IMAGE_BYTES = 20 << 20


@dataclass(frozen=True)
class Context:
    items: list[dict[str, Any]]  # everything the model is given, oldest first
    own: list[dict[str, Any]]  # this request's input items, as stored
    key: str | None = None  # the conversation or the chain's first response: whose citation markers these are
    conversation: str | None = None
    containers: list[str] = field(default_factory=list)  # the context's code_interpreter containers


class ContextBuilder:
    def __init__(self, store: ResponseStore, files: FileStore, owners: Owners) -> None:
        self._store, self._files, self._owners = store, files, owners

    async def build(self, request: dict[str, Any], caller: Caller) -> Context:
        previous, conversation = request.get("previous_response_id"), request.get("conversation")
        if previous and conversation:
            raise InvalidRequest("Pass either previous_response_id or conversation, not both.",
                                 param="previous_response_id")
        earlier: list[dict[str, Any]] = []
        key = None
        if previous:
            earlier, key = self._chain(previous, caller)
        elif conversation:
            if not self._owners.sees(caller, conversation):
                raise NotFound(f"Conversation with id '{conversation}' not found.")
            earlier, key = self._store.items(conversation), conversation
        own = [self._resolved(item, caller) for item in normalize(request.get("input") or [])]
        items = earlier + own
        for item in items:  # a conversation's items too: whoever added them, these bytes go to this caller's model
            self.check_files(item, caller)
        check_outputs(items)
        # A client may replay (or forge) a code_interpreter_call naming any container: only the caller's count.
        containers = list(dict.fromkeys(item["container_id"] for item in items
                                        if item["type"] == "code_interpreter_call" and item.get("container_id")
                                        and self._owners.sees(caller, item["container_id"])))
        return Context(items, own, key, conversation, containers)

    def _chain(self, previous: str, caller: Caller) -> tuple[list[dict[str, Any]], str]:
        bodies = []
        next_id: str | None = previous
        while next_id:
            try:
                if not self._owners.sees(caller, next_id):
                    raise ResponseNotFound(next_id)
                body = self._store.get(next_id)
            except ResponseNotFound as exc:
                if next_id == previous:
                    raise InvalidRequest(f"Previous response with id '{previous}' not found.",
                                         param="previous_response_id", code="previous_response_not_found") from exc
                break  # an older link was deleted: the chain starts after it
            bodies.append(body)
            next_id = body.get("previous_response_id")
        items: list[dict[str, Any]] = []
        for body in reversed(bodies):
            items += self._store.inputs(body["id"]) + body["output"]
        return items, bodies[0].get("_key") or bodies[-1]["id"]

    def _resolved(self, item: dict[str, Any], caller: Caller) -> dict[str, Any]:
        if item["type"] != "item_reference":
            return item
        for body, holder in self._store.stored_items(str(item.get("id"))):
            if self._owners.sees(caller, holder):  # another project's item is as unknown as a missing one
                return body
        raise InvalidRequest(f"Item with id '{item.get('id')}' not found.", param="input")

    def check_files(self, item: dict[str, Any], caller: Caller) -> None:
        """Every file a message part or a function output names is the caller's (an unknown id and another
        project's look alike)."""
        given = item.get("content") if item["type"] == "message" else item.get("output")
        for part in given if isinstance(given, list) else []:
            file_id = part.get("file_id") if isinstance(part, dict) else None
            if file_id and not self._owners.sees(caller, file_id):
                raise NotFound(f"No such File object: {file_id}")

    def messages(self, context: Context) -> list[dict[str, Any]]:
        return to_messages(context.items, self._image)

    def _image(self, file_id: str) -> str:
        stored = self._files.get(file_id)
        if stored.bytes > MAX_IMAGE_BYTES:
            raise InvalidRequest(f"input_image {file_id} is larger than {MAX_IMAGE_BYTES >> 20} MB.", param="input")
        kind = mimetypes.guess_type(stored.filename)[0] or "image/png"
        return f"data:{kind};base64,{base64.b64encode(self._files.blob_path(file_id).read_bytes()).decode()}"
