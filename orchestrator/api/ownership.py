"""Projects at the faces: every id in a path, and every id a request body uses, must be the caller's project's.

Another project's id is answered exactly as an unknown one (the kind's own 404), so a key learns nothing of what
other projects hold. Objects under a checked one (a thread's runs, a store's files, a container's files) are
found only through it, so checking the top-level id in the path is enough for them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from fastapi import Depends, Request

from orchestrator.assistants.service import MessageAttachment, Resources
from orchestrator.assistants.store import ObjectNotFound
from orchestrator.sandbox import SandboxNotFound
from orchestrator.services.projects import Caller, Owners
from orchestrator.services.storage import FileNotFound
from orchestrator.web.auth import CallerDep, OwnersDep
from retrieval.errors import StoreNotFound

# Each kind of top-level id (by its path parameter's name) and how that kind says "no such object".
_MISSING: dict[str, Callable[[str], Exception]] = {
    "file_id": FileNotFound,
    "store_id": StoreNotFound,
    "container_id": SandboxNotFound,
    "assistant_id": lambda object_id: ObjectNotFound("assistants", object_id),
    "thread_id": lambda object_id: ObjectNotFound("threads", object_id),
}


def owned_path(param: str) -> Any:
    """A router dependency: the path's `param` id must be the caller's project's."""

    async def check(request: Request, caller: CallerDep, owners: OwnersDep) -> None:
        value = request.path_params.get(param)
        if value is not None and not owners.sees(caller, value):
            raise _MISSING[param](value)

    return Depends(check)


def require(caller: Caller, owners: Owners, *, file_ids: Iterable[str] = (), store_ids: Iterable[str] = (),
            assistant_ids: Iterable[str] = ()) -> None:
    """Every id a request body uses must be the caller's project's; the first that is not is a 404."""
    for param, ids in (("file_id", file_ids), ("store_id", store_ids), ("assistant_id", assistant_ids)):
        for object_id in ids:
            if not owners.sees(caller, object_id):
                raise _MISSING[param](object_id)


def require_resources(caller: Caller, owners: Owners, resources: Resources) -> None:
    """The files and vector stores `tool_resources` names, including the files of new stores it asks for."""
    new_files = [a.file_id for new in resources.new_vector_stores for a in new.attachments]
    require(caller, owners, file_ids=[*(resources.code_interpreter_file_ids or []), *new_files],
            store_ids=resources.vector_store_ids or [])


def require_messages(caller: Caller, owners: Owners,
                     messages: Iterable[tuple[dict[str, Any], list[MessageAttachment]]]) -> None:
    """The files messages attach or show (`image_file` parts)."""
    for fields, attachments in messages:
        shown = [part["image_file"]["file_id"] for part in fields["content"] if part["type"] == "image_file"]
        require(caller, owners, file_ids=[*(a.file_id for a in attachments), *shown])
