"""/v1/tools, /v1/tool_calls and /v1/annotations: the routes an assistant server's tool loop calls."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response

from orchestrator.api.deps import ToolRouterDep as Router
from orchestrator.api.disconnect import unless_disconnected
from orchestrator.api.schemas import TextContent, artifact_wire, json_response, output_wire
from orchestrator.api.tool_schemas import (
    AnnotateRequest,
    CodeInterpreterDetails,
    CodeInterpreterToolCall,
    FileCitation,
    FileCitationAnnotationWire,
    FilePath,
    FilePathAnnotationWire,
    FileSearchDetails,
    FileSearchResultWire,
    FileSearchToolCall,
    TextContentPart,
    TextValue,
    ToolCallRequest,
    ToolCallResponse,
    ToolCallsStepDetails,
    ToolList,
)
from orchestrator.tools.code_interpreter import CodeInterpreterResult
from orchestrator.tools.file_search import FileSearchResult
from orchestrator.tools.router import ToolCall, ToolResources, ToolRouter

router = APIRouter(tags=["tools"])


@router.get("/tools", response_model=ToolList)
async def list_tools() -> ToolList:
    return ToolList(data=ToolRouter.definitions())


@router.post("/tool_calls", response_model=ToolCallResponse)
async def call_tool(body: ToolCallRequest, tools: Router, request: Request) -> Response:
    call = ToolCall(body.tool_call.id, body.tool_call.function.name, body.tool_call.function.arguments)
    resources = body.tool_resources
    code_interpreter = resources.code_interpreter if resources else None
    file_search = resources.file_search if resources else None
    task = asyncio.create_task(tools.call(body.thread_id, call, ToolResources(
        code_interpreter.file_ids if code_interpreter else [], file_search.vector_store_ids if file_search else [])))
    result = await unless_disconnected(request, task)
    if isinstance(result, FileSearchResult):
        return json_response(_file_search_response(call.id, result))
    return json_response(_code_interpreter_response(call.id, result))


def _code_interpreter_response(call_id: str, result: CodeInterpreterResult) -> ToolCallResponse:
    execution = result.run.execution
    step = CodeInterpreterToolCall(id=call_id, code_interpreter=CodeInterpreterDetails(
        input=result.code, outputs=[output_wire(item) for item in result.run.items]))
    return ToolCallResponse(tool_call_id=call_id, output=result.output, status=execution.status,
                            step_details=ToolCallsStepDetails(tool_calls=[step]),
                            files=[artifact_wire(a) for a in execution.artifacts],
                            files_omitted=execution.artifacts_omitted, container_id=result.container_id)


def _file_search_response(call_id: str, result: FileSearchResult) -> ToolCallResponse:
    results = [FileSearchResultWire(file_id=hit.file_id, file_name=hit.filename, score=round(hit.score, 6),
                                    content=[TextContent(text=hit.text)], page=hit.page, marker=src.label)
               for hit, src in zip(result.hits, result.sources, strict=True)]
    step = FileSearchToolCall(id=call_id, file_search=FileSearchDetails(results=results))
    return ToolCallResponse(tool_call_id=call_id, output=result.output, status="completed",
                            step_details=ToolCallsStepDetails(tool_calls=[step]), files=[], container_id=None)


@router.post("/annotations", response_model=TextContentPart)
async def annotate(body: AnnotateRequest, tools: Router) -> TextContentPart:
    found = tools.annotate(body.thread_id, body.text)
    annotations: list = [
        FilePathAnnotationWire(text=a.text, start_index=a.start_index, end_index=a.end_index,
                               file_path=FilePath(file_id=a.file_id))
        for a in found.file_paths
    ] + [
        FileCitationAnnotationWire(text=a.text, start_index=a.start_index, end_index=a.end_index,
                                   file_citation=FileCitation(file_id=a.source.file_id, quote=a.source.quote,
                                                              page=a.source.page))
        for a in found.citations
    ]
    annotations.sort(key=lambda a: a.start_index)
    return TextContentPart(text=TextValue(value=body.text, annotations=annotations))
