"""Request bodies of the Assistants API (assistants, threads, messages), shaped like openai.types.beta's
*_create_params and *_update_params. Responses are the stored objects themselves (see orchestrator.assistants)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from orchestrator.api.schemas import ClientId, StrictBody
from orchestrator.api.vector_store_schemas import ChunkingRequest, Metadata
from orchestrator.assistants.service import MessageAttachment, NewVectorStore, Resources
from orchestrator.services.vector_stores import Attachment

# ---- tools ------------------------------------------------------------------------------------------------------


class FunctionDefinition(BaseModel):
    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None

    @field_validator("parameters")
    @classmethod
    def _an_object_schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and value.get("type", "object") != "object":
            raise ValueError("a function's parameters must be a JSON Schema of type 'object'")
        return value


class FunctionTool(BaseModel):
    type: Literal["function"]
    function: FunctionDefinition


class CodeInterpreterTool(BaseModel):
    type: Literal["code_interpreter"]


class RankingOptions(BaseModel):
    ranker: Literal["auto", "default_2024_08_21"] = "auto"
    score_threshold: float = Field(0.0, ge=0, le=1)


class FileSearchSettings(BaseModel):
    max_num_results: int | None = Field(None, ge=1, le=50)
    ranking_options: RankingOptions | None = None


class FileSearchTool(BaseModel):
    type: Literal["file_search"]
    file_search: FileSearchSettings | None = None


Tool = Annotated[CodeInterpreterTool | FileSearchTool | FunctionTool, Field(discriminator="type")]


def dump_tools(tools: list[Tool]) -> list[dict[str, Any]]:
    return [tool.model_dump(exclude_none=True) for tool in tools]


# ---- tool resources ---------------------------------------------------------------------------------------------

class CodeInterpreterResources(BaseModel):
    file_ids: list[str] = Field(default_factory=list)


class NewVectorStoreRequest(BaseModel):
    file_ids: list[str] = Field(default_factory=list, max_length=10000)
    chunking_strategy: ChunkingRequest | None = None
    metadata: Metadata | None = None


class FileSearchResources(BaseModel):
    vector_store_ids: list[str] | None = None
    vector_stores: list[NewVectorStoreRequest] | None = None


class ToolResources(BaseModel):
    code_interpreter: CodeInterpreterResources | None = None
    file_search: FileSearchResources | None = None

    def resources(self) -> Resources:
        search = self.file_search
        new = [NewVectorStore([Attachment(f, chunking=helper.chunking_strategy.strategy()
                                          if helper.chunking_strategy else None) for f in helper.file_ids],
                              helper.metadata) for helper in (search.vector_stores or [])] if search else []
        return Resources(self.code_interpreter.file_ids if self.code_interpreter else None,
                         search.vector_store_ids if search else None, new)


def resources_of(given: ToolResources | None) -> Resources:
    return given.resources() if given is not None else Resources()


# ---- assistants -------------------------------------------------------------------------------------------------

ResponseFormat = Literal["auto"] | dict[str, Any]


class AssistantFields(StrictBody):
    name: str | None = Field(None, max_length=256)
    description: str | None = Field(None, max_length=512)
    instructions: str | None = Field(None, max_length=256_000)
    tools: list[Tool] | None = Field(None, max_length=128)
    tool_resources: ToolResources | None = None
    metadata: Metadata | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    response_format: ResponseFormat | None = None
    reasoning_effort: str | None = None

    @field_validator("response_format")
    @classmethod
    def _known_format(cls, value: ResponseFormat | None) -> ResponseFormat | None:
        if isinstance(value, dict) and value.get("type") not in ("text", "json_object", "json_schema"):
            raise ValueError("response_format must be 'auto' or {type: text | json_object | json_schema}")
        return value

    def fields(self) -> dict[str, Any]:
        """The object fields this request sets (tool_resources are resolved separately)."""
        given = self.model_dump(exclude_unset=True, exclude={"tool_resources", "tools", "reasoning_effort"})
        if self.tools is not None:
            given["tools"] = dump_tools(self.tools)
        if "metadata" in given and given["metadata"] is None:
            given["metadata"] = {}
        return given


class AssistantCreate(AssistantFields):
    model: str = Field(min_length=1, max_length=256)


class AssistantUpdate(AssistantFields):
    model: str | None = Field(None, min_length=1, max_length=256)


# ---- messages and threads ---------------------------------------------------------------------------------------

class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class ImageFileRef(BaseModel):
    file_id: str
    detail: Literal["auto", "low", "high"] | None = None


class ImageFilePart(BaseModel):
    type: Literal["image_file"]
    image_file: ImageFileRef


class ImageUrlRef(BaseModel):
    url: str
    detail: Literal["auto", "low", "high"] | None = None


class ImageUrlPart(BaseModel):
    type: Literal["image_url"]
    image_url: ImageUrlRef


ContentPart = Annotated[TextPart | ImageFilePart | ImageUrlPart, Field(discriminator="type")]


class AttachmentTool(BaseModel):
    type: Literal["code_interpreter", "file_search"]


class AttachmentRequest(BaseModel):
    file_id: str
    tools: list[AttachmentTool] = Field(min_length=1)


class MessageCreate(StrictBody):
    role: Literal["user", "assistant"]
    content: str | list[ContentPart]
    attachments: list[AttachmentRequest] | None = None
    metadata: Metadata | None = None

    def fields(self) -> dict[str, Any]:
        if isinstance(self.content, str):
            content = [{"type": "text", "text": {"value": self.content, "annotations": []}}]
        else:
            content = [{"type": "text", "text": {"value": part.text, "annotations": []}} if isinstance(part, TextPart)
                       else part.model_dump(exclude_none=True) for part in self.content]
        return {"role": self.role, "content": content, "metadata": self.metadata or {}}

    def attachment_list(self) -> list[MessageAttachment]:
        return [MessageAttachment(a.file_id, sorted({t.type for t in a.tools})) for a in self.attachments or []]


class MessageUpdate(StrictBody):
    metadata: Metadata | None = None


class ThreadCreate(StrictBody):
    messages: list[MessageCreate] | None = Field(None, max_length=32)
    tool_resources: ToolResources | None = None
    metadata: Metadata | None = None


class ThreadUpdate(StrictBody):
    tool_resources: ToolResources | None = None
    metadata: Metadata | None = None


# ---- runs -------------------------------------------------------------------------------------------------------

class NamedFunction(BaseModel):
    name: str


class ToolChoice(BaseModel):
    """A named tool the model must call: a function by name, or a hosted tool."""

    type: Literal["function", "code_interpreter", "file_search"]
    function: NamedFunction | None = None


class TruncationStrategy(BaseModel):
    type: Literal["auto", "last_messages"]
    last_messages: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _count_given(self) -> TruncationStrategy:
        if self.type == "last_messages" and self.last_messages is None:
            raise ValueError("truncation_strategy of type last_messages needs last_messages.")
        return self


class RunCreate(StrictBody):
    assistant_id: str
    model: str | None = Field(None, min_length=1, max_length=256)
    instructions: str | None = Field(None, max_length=256_000)
    additional_instructions: str | None = Field(None, max_length=256_000)
    additional_messages: list[MessageCreate] | None = None
    tools: list[Tool] | None = Field(None, max_length=128)
    metadata: Metadata | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    max_prompt_tokens: int | None = Field(None, ge=256)
    max_completion_tokens: int | None = Field(None, ge=256)
    truncation_strategy: TruncationStrategy | None = None
    tool_choice: Literal["none", "auto", "required"] | ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    reasoning_effort: str | None = None
    stream: bool | None = None

    @field_validator("response_format")
    @classmethod
    def _known_format(cls, value: ResponseFormat | None) -> ResponseFormat | None:
        return AssistantFields._known_format(value)

    def options(self) -> dict[str, Any]:
        """The run fields this request overrides (the rest come from the assistant)."""
        given = self.model_dump(exclude_unset=True, exclude_none=False, exclude={
            "assistant_id", "additional_messages", "tools", "stream", "reasoning_effort"})
        if isinstance(self.tool_choice, ToolChoice):
            given["tool_choice"] = self.tool_choice.model_dump(exclude_none=True)
        if self.tools is not None:
            given["tools"] = dump_tools(self.tools)
        if "metadata" in given and given["metadata"] is None:
            given["metadata"] = {}
        return {key: value for key, value in given.items() if value is not None or key == "instructions"}

    def messages(self) -> list[tuple[dict[str, Any], list[MessageAttachment]]]:
        return [(message.fields(), message.attachment_list()) for message in self.additional_messages or []]


class ThreadAndRunCreate(RunCreate):
    thread: ThreadCreate | None = None


class RunUpdate(StrictBody):
    metadata: Metadata | None = None


class ToolOutput(BaseModel):
    tool_call_id: ClientId
    output: str = ""


class ToolOutputs(StrictBody):
    tool_outputs: list[ToolOutput]
    stream: bool | None = None
