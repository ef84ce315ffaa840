"""Request bodies of the Assistants API v1 (openai 1.2.3's *_create_params and *_update_params), each turned into
what the v2 services take. Unknown fields are refused with their name as `param`, so a v2-only field (e.g.
`tool_resources`, `attachments`, a `file_search` tool) on a v1 request is a 400, never dropped silently."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from orchestrator.assistants.service import MessageAttachment

Metadata = Annotated[dict[Annotated[str, StringConstraints(max_length=64)],
                          Annotated[str, StringConstraints(max_length=512)]], Field(max_length=16)]
# A v1 message's file serves both of v1's file tools: it is searched and it is in the sandbox.
MESSAGE_FILE_TOOLS = ["code_interpreter", "file_search"]
_LINE_BREAKING = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _encodable(value: Any) -> bool:
    """False if any string in `value` holds a lone surrogate (JSON may escape one; nothing can store it)."""
    if isinstance(value, str):
        return not any("\ud800" <= char <= "\udfff" for char in value)
    if isinstance(value, dict):
        return all(_encodable(key) and _encodable(item) for key, item in value.items())
    if isinstance(value, list):
        return all(_encodable(item) for item in value)
    return True


class V1Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _valid_unicode(cls, data: Any) -> Any:
        if not _encodable(data):
            raise ValueError("the body is not valid Unicode: it contains a lone surrogate escape")
        return data


def _one_line(value: str) -> str:
    # Tool call ids reach log lines; a line break in one would forge a line of the server's own.
    if _LINE_BREAKING.search(value):
        raise ValueError("must not contain line breaks or other control characters")
    return value


# ---- tools ------------------------------------------------------------------------------------------------------

class FunctionDefinition(BaseModel):
    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] | None = None


class FunctionTool(BaseModel):
    type: Literal["function"]
    function: FunctionDefinition


class CodeInterpreterTool(BaseModel):
    type: Literal["code_interpreter"]


class RetrievalTool(BaseModel):
    type: Literal["retrieval"]


Tool = Annotated[CodeInterpreterTool | RetrievalTool | FunctionTool, Field(discriminator="type")]
Tools = Annotated[list[Tool], Field(max_length=128)]


def v2_tools(tools: list[Tool]) -> list[dict[str, Any]]:
    """The tools as stored (v2): `retrieval` is `file_search`."""
    return [{"type": "file_search"} if isinstance(tool, RetrievalTool) else tool.model_dump(exclude_none=True)
            for tool in tools]


# ---- assistants -------------------------------------------------------------------------------------------------

class AssistantFields(V1Body):
    name: str | None = Field(None, max_length=256)
    description: str | None = Field(None, max_length=512)
    instructions: str | None = Field(None, max_length=32_768)
    tools: Tools | None = None
    file_ids: list[str] | None = Field(None, max_length=20)
    metadata: Metadata | None = None

    def fields(self) -> dict[str, Any]:
        """The stored fields this request sets (file_ids become tool resources separately)."""
        given = self.model_dump(exclude_unset=True, exclude={"tools", "file_ids"})
        if self.tools is not None:
            given["tools"] = v2_tools(self.tools)
        if "metadata" in given and given["metadata"] is None:
            given["metadata"] = {}
        return given


class AssistantCreate(AssistantFields):
    model: str = Field(min_length=1, max_length=256)


class AssistantUpdate(AssistantFields):
    model: str | None = Field(None, min_length=1, max_length=256)


class AssistantFileCreate(V1Body):
    file_id: str


# ---- threads and messages ---------------------------------------------------------------------------------------

class MessageCreate(V1Body):
    role: Literal["user"]
    content: str = Field(max_length=32_768)
    file_ids: list[str] = Field(default_factory=list, max_length=10)
    metadata: Metadata | None = None

    def fields(self) -> dict[str, Any]:
        return {"role": self.role, "content": [{"type": "text", "text": {"value": self.content, "annotations": []}}],
                "metadata": self.metadata or {}}

    def attachments(self) -> list[MessageAttachment]:
        return [MessageAttachment(file_id, MESSAGE_FILE_TOOLS) for file_id in dict.fromkeys(self.file_ids)]

    def pair(self) -> tuple[dict[str, Any], list[MessageAttachment]]:
        return self.fields(), self.attachments()


class MetadataUpdate(V1Body):
    """Threads, messages and runs: v1 changes only their metadata."""

    metadata: Metadata | None = None


class ThreadCreate(V1Body):
    messages: list[MessageCreate] | None = Field(None, max_length=32)
    metadata: Metadata | None = None


# ---- runs -------------------------------------------------------------------------------------------------------

class RunCreate(V1Body):
    assistant_id: str
    model: str | None = Field(None, min_length=1, max_length=256)
    instructions: str | None = Field(None, max_length=32_768)
    tools: Tools | None = None
    metadata: Metadata | None = None

    def options(self) -> dict[str, Any]:
        """The run fields this request overrides (the rest come from the assistant)."""
        given = self.model_dump(exclude_unset=True, exclude={"assistant_id", "tools", "thread"})
        if self.tools is not None:
            given["tools"] = v2_tools(self.tools)
        if "metadata" in given and given["metadata"] is None:
            given["metadata"] = {}
        return {key: value for key, value in given.items() if value is not None or key == "instructions"}


class ThreadAndRunCreate(RunCreate):
    thread: ThreadCreate | None = None


class ToolOutput(BaseModel):
    tool_call_id: Annotated[str, Field(min_length=1, max_length=256), AfterValidator(_one_line)]
    output: str = ""


class ToolOutputs(V1Body):
    tool_outputs: list[ToolOutput]
