"""/v1/tools, /v1/tool_calls and /v1/annotations: the routes an assistant server's tool loop calls."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response

from orchestrator.api.deps import AnnotatorDep, Tools
from orchestrator.api.ownership import require
from orchestrator.api.schemas import artifact_wire, json_response
from orchestrator.api.tool_schemas import (
    AnnotateRequest,
    FileCitation,
    FileCitationAnnotationWire,
    FilePath,
    FilePathAnnotationWire,
    TextContentPart,
    TextValue,
    ToolCallRequest,
    ToolCallResponse,
    ToolCallsStepDetails,
    ToolList,
    UnresolvedMarkerWire,
)
from orchestrator.services.bindings import TOOL_CALLS
from orchestrator.tools.code_interpreter import CodeInterpreterResult
from orchestrator.tools.file_search import FileSearchResult
from orchestrator.tools.registry import ToolCall, ToolContext, ToolProblem, ToolResources
from orchestrator.tools.steps import tool_call_step
from orchestrator.web.auth import CallerDep, OwnersDep
from orchestrator.web.disconnect import unless_disconnected
from orchestrator.web.errors import APIError

router = APIRouter(tags=["tools"])


@router.get("/tools", response_model=ToolList)
async def list_tools(tools: Tools) -> ToolList:
    return ToolList(data=tools.definitions())


@router.post("/tool_calls", response_model=ToolCallResponse)
async def call_tool(body: ToolCallRequest, tools: Tools, request: Request, caller: CallerDep,
                    owners: OwnersDep) -> Response:
    call = ToolCall(body.tool_call.id, body.tool_call.function.name, body.tool_call.function.arguments_json())
    resources = body.tool_resources
    code_interpreter = resources.code_interpreter if resources else None
    file_search = resources.file_search if resources else None
    used = ToolResources(code_interpreter.file_ids if code_interpreter else [],
                         file_search.vector_store_ids if file_search else [])
    require(caller, owners, file_ids=used.code_interpreter_file_ids, store_ids=used.vector_store_ids)
    # Thread names are the assistant server's: each project has its own namespace of them.
    context = ToolContext(TOOL_CALLS, caller.key(body.thread_id), caller.project, used, timeout=body.timeout)
    outcome = await unless_disconnected(request, asyncio.create_task(tools.call(call, context)))
    # This face's contract: a call the model got wrong is the assistant server's 400, not a tool output.
    if isinstance(outcome, ToolProblem):
        raise APIError(400, outcome.message, param=outcome.param, code=outcome.code)
    assert isinstance(outcome, CodeInterpreterResult | FileSearchResult)
    step = ToolCallsStepDetails.model_validate({"tool_calls": [tool_call_step(call.id, outcome)]})
    if isinstance(outcome, FileSearchResult):
        return json_response(ToolCallResponse(tool_call_id=call.id, output=outcome.output, status="completed",
                                              step_details=step, files=[], container_id=None))
    execution = outcome.run.execution
    return json_response(ToolCallResponse(
        tool_call_id=call.id, output=outcome.output, status=execution.status, step_details=step,
        files=[artifact_wire(a) for a in execution.artifacts], files_omitted=execution.artifacts_omitted,
        container_id=outcome.container_id))


@router.post("/annotations", response_model=TextContentPart)
async def annotate(body: AnnotateRequest, annotator: AnnotatorDep, caller: CallerDep) -> TextContentPart:
    found = annotator.annotate(TOOL_CALLS, caller.key(body.thread_id), body.text)
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
    return TextContentPart(text=TextValue(value=body.text, annotations=annotations), unresolved=[
        UnresolvedMarkerWire(text=u.text, start_index=u.start_index, end_index=u.end_index, reason=u.reason)
        for u in found.unresolved])
