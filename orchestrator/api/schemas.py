"""Wire format: pydantic models shaped like the OpenAI objects (see the openai package's types/)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Generic, Literal, TypeVar

from fastapi import Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from orchestrator.sandbox import Sandbox
from orchestrator.sandbox.models import Artifact
from orchestrator.services.container_files import ContainerFile
from orchestrator.services.storage import StoredFile
from orchestrator.tools.cells import CellRun, Image, Item

T = TypeVar("T")


class ListPage(BaseModel, Generic[T]):
    object: Literal["list"] = "list"
    data: list[T]
    first_id: str | None
    last_id: str | None
    has_more: bool


def page_of(items: list[Any], has_more: bool) -> dict[str, Any]:
    """An OpenAI list page of objects (models, or stored bodies as dicts)."""
    ids = [item["id"] if isinstance(item, dict) else item.id for item in items]
    return {"object": "list", "data": items, "first_id": ids[0] if ids else None,
            "last_id": ids[-1] if ids else None, "has_more": has_more}


def paginate(items: list[Any], *, after: str | None, limit: int, order: str,
             before: str | None = None) -> tuple[list[Any], bool]:
    """Cursor pagination over an in-memory list sorted ascending by creation (items have an `id`)."""
    ordered = items if order == "asc" else list(reversed(items))
    ids = [item.id for item in ordered]
    if before is not None:
        ordered = ordered[:ids.index(before)] if before in ids else []
        return ordered[-limit:], len(ordered) > limit
    if after is not None:
        ordered = ordered[ids.index(after) + 1:] if after in ids else []
    return ordered[:limit], len(ordered) > limit


class StrictBody(BaseModel):
    """A JSON request body: unknown fields are refused, and so is text that is not valid Unicode."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _valid_unicode(cls, data: Any) -> Any:
        # JSON may escape a lone surrogate ("\ud800"), which Python decodes but nothing can encode again: the
        # database, the kernel protocol and the response would each fail later with a 500.
        if (where := lone_surrogate(data)) is not None:
            raise ValueError(f"{where or 'the body'} is not valid Unicode: it contains a lone surrogate escape")
        return data


_LINE_BREAKING = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _no_line_breaks(value: str) -> str:
    # A name the client chose is written into log lines (thread_id=..., tool_call_id=...): a line break in it
    # would start a line that looks like the server's own.
    if _LINE_BREAKING.search(value):
        raise ValueError("must not contain line breaks or other control characters")
    return value


# A thread name or tool call id chosen by the client.
ClientId = Annotated[str, Field(min_length=1, max_length=256), AfterValidator(_no_line_breaks)]


def lone_surrogate(value: Any, where: str = "") -> str | None:
    """The dotted path of the first string in `value` that cannot be encoded as UTF-8, or None."""
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            return where
        return None
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = lone_surrogate(key, where) if isinstance(key, str) else None
        if found is None:
            found = lone_surrogate(item, f"{where}.{key}" if where else str(key))
        if found is not None:
            return found
    return None


# ---- containers -------------------------------------------------------------------------------------------------

class ExpiresAfter(BaseModel):
    anchor: Literal["last_active_at"] = "last_active_at"
    minutes: int = Field(20, ge=1, le=7 * 24 * 60)


class NetworkPolicy(BaseModel):
    type: Literal["disabled", "allowlist"]
    allowed_domains: list[str] | None = None


class ContainerCreate(StrictBody):
    name: str = Field(max_length=256)
    expires_after: ExpiresAfter | None = None
    file_ids: list[str] = Field(default_factory=list)
    memory_limit: Literal["1g", "4g", "16g", "64g"] | None = None
    network_policy: NetworkPolicy | None = None
    skills: list[dict[str, Any]] | None = None


class ContainerObject(BaseModel):
    id: str
    object: Literal["container"] = "container"
    created_at: int
    status: str
    name: str
    expires_after: ExpiresAfter
    last_active_at: int
    memory_limit: str
    network_policy: NetworkPolicy

    @classmethod
    def of(cls, sandbox: Sandbox) -> ContainerObject:
        return cls(
            id=sandbox.id,
            created_at=sandbox.created_at,
            status=sandbox.status,
            name=sandbox.name,
            expires_after=ExpiresAfter(minutes=sandbox.expires_after_minutes),
            last_active_at=sandbox.last_active_at,
            memory_limit=sandbox.memory_limit,
            network_policy=NetworkPolicy(type="disabled"),
        )


class Deleted(BaseModel):
    id: str
    object: str
    deleted: bool = True


# ---- execution --------------------------------------------------------------------------------------------------

class ExecuteRequest(StrictBody):
    code: str
    timeout: float | None = Field(None, gt=0)
    stream: bool = False


class LogsOutput(BaseModel):
    type: Literal["logs"] = "logs"
    logs: str


class ImageFile(BaseModel):
    file_id: str


class ImageOutputWire(BaseModel):
    type: Literal["image"] = "image"
    image: ImageFile


class ExecutionErrorWire(BaseModel):
    name: str
    value: str
    traceback: list[str]


class ArtifactWire(BaseModel):
    """A file under /mnt/data the execution created or changed (`file_id` is None if it was not exported)."""

    file_id: str | None
    container_file_id: str
    path: str
    bytes: int
    error: str | None = None


class ExecutionObject(BaseModel):
    id: str
    object: Literal["container.execution"] = "container.execution"
    container_id: str
    status: str
    outputs: list[LogsOutput | ImageOutputWire]
    files: list[ArtifactWire]
    # Changed files past the per-execution listing cap: registered as container files, not listed here.
    files_omitted: int = 0
    error: ExecutionErrorWire | None
    duration_ms: int
    kernel_restarted: bool


WireOutput = LogsOutput | ImageOutputWire


def output_wire(item: Item) -> WireOutput:
    if isinstance(item, Image):
        return ImageOutputWire(image=ImageFile(file_id=item.file_id))
    return LogsOutput(logs=item.text)


def artifact_wire(artifact: Artifact) -> ArtifactWire:
    return ArtifactWire(file_id=artifact.file_id, container_file_id=artifact.container_file_id,
                        path=artifact.path, bytes=artifact.bytes, error=artifact.error)


def json_response(model: BaseModel) -> Response:
    """The model as JSON, serialised once. Returned from the hot routes (execute, tool calls), where FastAPI's
    own response_model pass would validate the finished object again before serialising it; the route keeps
    response_model for the OpenAPI schema."""
    return Response(model.model_dump_json(), media_type="application/json")


def execution_object(run: CellRun) -> ExecutionObject:
    execution = run.execution
    error = execution.error
    return ExecutionObject(
        id=execution.id,
        container_id=execution.sandbox_id,
        status=execution.status,
        outputs=[output_wire(item) for item in run.items],
        files=[artifact_wire(a) for a in execution.artifacts],
        files_omitted=execution.artifacts_omitted,
        error=ExecutionErrorWire(name=error.name, value=error.value, traceback=list(error.traceback))
        if error else None,
        duration_ms=execution.duration_ms,
        kernel_restarted=execution.kernel_restarted,
    )


# ---- files ------------------------------------------------------------------------------------------------------

class FileObject(BaseModel):
    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    filename: str
    purpose: str
    status: Literal["uploaded", "processed", "error"] = "processed"
    expires_at: int | None = None
    status_details: str | None = None

    @classmethod
    def of(cls, stored: StoredFile) -> FileObject:
        return cls(id=stored.id, bytes=stored.bytes, created_at=stored.created_at, filename=stored.filename,
                   purpose=stored.purpose)


class ContainerFileObject(BaseModel):
    id: str
    object: Literal["container.file"] = "container.file"
    bytes: int
    container_id: str
    created_at: int
    path: str
    source: str

    @classmethod
    def of(cls, record: ContainerFile) -> ContainerFileObject:
        return cls(id=record.id, bytes=record.bytes, container_id=record.container_id, created_at=record.created_at,
                   path=record.sandbox_path, source=record.source)


class ContainerFileCopy(StrictBody):
    file_id: str


class TextContent(BaseModel):
    type: Literal["text"] = "text"
    text: str
