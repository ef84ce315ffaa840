"""Wire format of the tool routes (/v1/tools, /v1/tool_calls, /v1/annotations), shaped like the Assistants run-step
and message-annotation objects of openai.types.beta."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, Field

from orchestrator.api.schemas import ArtifactWire, ClientId, ImageOutputWire, LogsOutput, StrictBody, TextContent

# ---- tool calls -------------------------------------------------------------------------------------------------

class FunctionCall(BaseModel):
    name: str
    # Many non-OpenAI servers hand on arguments as a JSON object rather than a JSON string: both are taken.
    arguments: str | dict[str, Any]

    def arguments_json(self) -> str:
        return self.arguments if isinstance(self.arguments, str) else json.dumps(self.arguments)


class ToolCallWire(BaseModel):
    id: ClientId
    type: Literal["function"] = "function"
    function: FunctionCall


class CodeInterpreterResources(BaseModel):
    file_ids: list[str] = Field(default_factory=list)


class FileSearchResources(BaseModel):
    vector_store_ids: list[str] = Field(default_factory=list)


class ToolResourcesWire(BaseModel):
    code_interpreter: CodeInterpreterResources | None = None
    file_search: FileSearchResources | None = None


class ToolCallRequest(StrictBody):
    thread_id: ClientId
    tool_call: ToolCallWire
    tool_resources: ToolResourcesWire | None = None
    timeout: float | None = Field(None, gt=0)  # seconds a code_interpreter cell may run


class CodeInterpreterDetails(BaseModel):
    input: str
    outputs: list[LogsOutput | ImageOutputWire]


class CodeInterpreterToolCall(BaseModel):
    id: str
    type: Literal["code_interpreter"] = "code_interpreter"
    code_interpreter: CodeInterpreterDetails


class FileSearchResultWire(BaseModel):
    file_id: str
    file_name: str
    score: float
    content: list[TextContent]
    # Toolshed extensions: where the passage is, the marker given to the model, and the score's two parts.
    page: int | None
    chunk_id: int
    marker: str
    dense_score: float | None
    keyword_score: float | None


class FileSearchRankingOptions(BaseModel):
    ranker: str = "auto"
    score_threshold: float = 0.0


class FileSearchDetails(BaseModel):
    ranking_options: FileSearchRankingOptions = Field(default_factory=FileSearchRankingOptions)
    results: list[FileSearchResultWire]


class FileSearchToolCall(BaseModel):
    id: str
    type: Literal["file_search"] = "file_search"
    file_search: FileSearchDetails


class ToolCallsStepDetails(BaseModel):
    type: Literal["tool_calls"] = "tool_calls"
    tool_calls: list[CodeInterpreterToolCall | FileSearchToolCall]


class ToolCallResponse(BaseModel):
    tool_call_id: str
    output: str
    status: str
    step_details: ToolCallsStepDetails
    files: list[ArtifactWire]
    files_omitted: int = 0
    container_id: str | None


class AnnotateRequest(StrictBody):
    thread_id: ClientId
    text: str


class FilePath(BaseModel):
    file_id: str


class FilePathAnnotationWire(BaseModel):
    type: Literal["file_path"] = "file_path"
    text: str
    start_index: int
    end_index: int
    file_path: FilePath


class FileCitation(BaseModel):
    file_id: str
    quote: str  # Toolshed extension: the cited passage
    page: int | None  # Toolshed extension


class FileCitationAnnotationWire(BaseModel):
    type: Literal["file_citation"] = "file_citation"
    text: str
    start_index: int
    end_index: int
    file_citation: FileCitation


class TextValue(BaseModel):
    value: str
    annotations: list[FilePathAnnotationWire | FileCitationAnnotationWire]


class UnresolvedMarkerWire(BaseModel):
    text: str
    start_index: int
    end_index: int
    reason: str


class TextContentPart(BaseModel):
    type: Literal["text"] = "text"
    text: TextValue
    # Toolshed extension: markers that cite nothing (unknown, or naming another file than their result's).
    unresolved: list[UnresolvedMarkerWire] = Field(default_factory=list)


class ToolList(BaseModel):
    object: Literal["list"] = "list"
    data: list[dict[str, Any]]
