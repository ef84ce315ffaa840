"""Assistants, threads and messages: created, read, changed and deleted in OpenAI's shapes, with every file and
vector store they name checked to exist first, and attachments turned into the thread's tool resources.

Limits as OpenAI's: 20 code-interpreter files and 1 vector store per assistant or thread. A `file_search`
attachment adds its file to the thread's own vector store, created on first use (expiring 7 days after it was
last used); a `code_interpreter` attachment adds it to the thread's code-interpreter files.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from orchestrator.assistants.store import ObjectStore
from orchestrator.db import Database, PageRequest
from orchestrator.errors import InvalidRequest
from orchestrator.services.projects import Owners
from orchestrator.services.storage import FileStore
from orchestrator.services.vector_stores import Attachment, VectorStores
from retrieval.ids import new_id

MAX_CODE_FILES = 20
# Run statuses that hold the thread lock.
# The largest image a message may show its model (sent inline, as OpenAI's vision input limit).
MAX_IMAGE_BYTES = 20 << 20
LIVE = ("queued", "in_progress", "requires_action", "cancelling")
THREAD_STORE_DAYS = 7


@dataclass(frozen=True)
class NewVectorStore:
    """The `vector_stores` helper of `tool_resources.file_search`: a store made from these files."""

    attachments: list[Attachment]
    metadata: dict[str, str] | None = None


@dataclass(frozen=True)
class Resources:
    """`tool_resources` as a request gives them; None means the request left that part alone."""

    code_interpreter_file_ids: list[str] | None = None
    vector_store_ids: list[str] | None = None
    new_vector_stores: list[NewVectorStore] = field(default_factory=list)


@dataclass(frozen=True)
class MessageAttachment:
    file_id: str
    tools: list[str]  # "code_interpreter" and/or "file_search"


class Assistants:
    def __init__(self, db: Database, files: FileStore, vector_stores: VectorStores, owners: Owners) -> None:
        self.objects = ObjectStore(db)
        self.files = files
        self.owners = owners
        self.vector_stores = vector_stores
        self._stores = vector_stores

    # ---- assistants ----------------------------------------------------------------------------------------

    def create_assistant(self, fields: dict[str, Any], resources: Resources, project: str) -> dict[str, Any]:
        body = {"id": new_id("asst_", 12), "object": "assistant", "created_at": int(time.time()), "name": None,
                "description": None, "instructions": None, "tools": [], "metadata": {}, "temperature": 1.0,
                "top_p": 1.0, "response_format": "auto", **fields,
                "tool_resources": self._resolve(resources, {}, "tool_resources", project)}
        return self.objects.insert("assistants", body, project=project)

    def update_assistant(self, assistant_id: str, fields: dict[str, Any], resources: Resources) -> dict[str, Any]:
        body = self.objects.get("assistants", assistant_id)
        tool_resources = self._resolve(resources, body["tool_resources"], "tool_resources",
                                       self.owners.project_of(assistant_id))
        return self.objects.replace("assistants", {**body, **fields, "tool_resources": tool_resources})

    # ---- threads -------------------------------------------------------------------------------------------

    def create_thread(self, resources: Resources, metadata: dict[str, str] | None,
                      messages: list[tuple[dict[str, Any], list[MessageAttachment]]], project: str) -> dict[str, Any]:
        """`project`'s new thread with its first messages (each message's fields, and its attachments)."""
        for _, attachments in messages:
            self._check_attachments(attachments)
        thread_id = new_id("thread_", 12)
        self.objects.insert("threads", {"id": thread_id, "object": "thread", "created_at": int(time.time()),
                                        "metadata": metadata or {},
                                        "tool_resources": self._resolve(resources, {}, "tool_resources", project)},
                            project=project)
        for fields, attachments in messages:
            self.create_message(thread_id, fields, attachments)
        return self.objects.get("threads", thread_id)

    def update_thread(self, thread_id: str, resources: Resources,
                      metadata: dict[str, str] | None) -> dict[str, Any]:
        body = self.objects.get("threads", thread_id)
        changed = {"tool_resources": self._resolve(resources, body["tool_resources"], "tool_resources",
                                                   self.owners.project_of(thread_id))}
        if metadata is not None:
            changed["metadata"] = metadata
        return self.objects.replace("threads", {**body, **changed})

    # ---- messages ------------------------------------------------------------------------------------------

    def create_message(self, thread_id: str, fields: dict[str, Any], attachments: list[MessageAttachment], *,
                       run_lock: bool = True) -> dict[str, Any]:
        """`fields`: role, content (parts in the stored shape) and metadata. While a run is live on the thread,
        only that run adds messages (`run_lock=False`); anyone else gets OpenAI's thread-lock error."""
        thread = self.objects.get("threads", thread_id)
        live = self.objects.live_run(thread_id, LIVE) if run_lock else None
        if live is not None:
            raise InvalidRequest(f"Can't add messages to {thread_id} while a run {live} is active.")
        self._check_attachments(attachments)
        for part in fields["content"]:
            if part["type"] == "image_file" and self.files.get(part["image_file"]["file_id"]).bytes > MAX_IMAGE_BYTES:
                raise InvalidRequest(f"image_file {part['image_file']['file_id']} is larger than "
                                     f"{MAX_IMAGE_BYTES >> 20} MB; a model takes images up to that size.",
                                     param="content")
        self._attach(thread, attachments)
        now = int(time.time())
        body = {"id": new_id("msg_", 12), "object": "thread.message", "created_at": now, "thread_id": thread_id,
                "status": "completed", "incomplete_details": None, "completed_at": now, "incomplete_at": None,
                "assistant_id": None, "run_id": None, "metadata": {}, **fields,
                "attachments": [{"file_id": a.file_id, "tools": [{"type": t} for t in a.tools]} for a in attachments]}
        if body["role"] == "user":  # the model's own messages are bounded by the run's output cap instead
            self.files.check_room(self.owners.project_of(thread_id), len(json.dumps(body)), "this message")
        return self.objects.insert("messages", body, thread_id=thread_id, run_id=body["run_id"])

    def messages(self, thread_id: str, page: PageRequest, run_id: str | None) -> tuple[list[dict[str, Any]], bool]:
        self.objects.get("threads", thread_id)
        return self.objects.page("messages", page, thread_id=thread_id, run_id=run_id)

    # ---- tool resources ------------------------------------------------------------------------------------

    def _resolve(self, resources: Resources, current: dict[str, Any], param: str, project: str) -> dict[str, Any]:
        """The tool resources as stored, every id checked; a `vector_stores` helper becomes a new store of
        `project`'s."""
        result = dict(current)
        if resources.code_interpreter_file_ids is not None:
            ids = resources.code_interpreter_file_ids
            if len(ids) > MAX_CODE_FILES:
                raise InvalidRequest(f"code_interpreter takes at most {MAX_CODE_FILES} files; got {len(ids)}.",
                                     param=f"{param}.code_interpreter.file_ids")
            for file_id in ids:
                self.files.get(file_id)
            result["code_interpreter"] = {"file_ids": list(ids)}
        if resources.vector_store_ids is not None or resources.new_vector_stores:
            ids = list(resources.vector_store_ids or [])
            if len(ids) + len(resources.new_vector_stores) > 1:
                raise InvalidRequest("file_search takes at most 1 vector store.",
                                     param=f"{param}.file_search.vector_store_ids")
            for store_id in ids:
                self._stores.get(store_id)
            for new in resources.new_vector_stores:
                ids.append(self._stores.create("", project=project, attachments=new.attachments,
                                               metadata=new.metadata, expires_after_days=None, description=None).id)
            result["file_search"] = {"vector_store_ids": ids}
        return result

    def _check_attachments(self, attachments: list[MessageAttachment]) -> None:
        for attachment in attachments:
            self.files.get(attachment.file_id)

    def _attach(self, thread: dict[str, Any], attachments: list[MessageAttachment]) -> None:
        resources = thread["tool_resources"]
        code_files = list(resources.get("code_interpreter", {}).get("file_ids", []))
        for attachment in attachments:
            if "code_interpreter" in attachment.tools and attachment.file_id not in code_files:
                code_files.append(attachment.file_id)
        if len(code_files) > MAX_CODE_FILES:
            raise InvalidRequest(f"A thread's code_interpreter takes at most {MAX_CODE_FILES} files.",
                                 param="attachments")
        searchable = [Attachment(a.file_id) for a in attachments if "file_search" in a.tools]
        store_ids = list(resources.get("file_search", {}).get("vector_store_ids", []))
        if searchable and store_ids:
            self._stores.attach(store_ids[0], searchable)
        elif searchable:
            store_ids = [self._stores.create(f"thread {thread['id']}", project=self.owners.project_of(thread["id"]),
                                             attachments=searchable, metadata=None,
                                             expires_after_days=THREAD_STORE_DAYS, description=None).id]
        if attachments:
            if code_files:
                resources["code_interpreter"] = {"file_ids": code_files}
            if store_ids:
                resources["file_search"] = {"vector_store_ids": store_ids}
            self.objects.replace("threads", thread)
