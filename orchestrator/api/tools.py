"""/v1/tools, /v1/tool_calls and /v1/annotations: the routes an assistant server's tool loop calls."""

from __future__ import annotations

from fastapi import APIRouter

from orchestrator.api.deps import ToolRouterDep as Router
from orchestrator.api.schemas import (
    AnnotateRequest,
    CodeInterpreterDetails,
    CodeInterpreterToolCall,
    FilePath,
    FilePathAnnotationWire,
    TextContentPart,
    TextValue,
    ToolCallRequest,
    ToolCallResponse,
    ToolCallsStepDetails,
    ToolList,
    artifact_wire,
    output_wire,
)
from orchestrator.tools.router import ToolCall, ToolResources, ToolRouter

router = APIRouter(tags=["tools"])


@router.get("/tools", response_model=ToolList)
async def list_tools() -> ToolList:
    return ToolList(data=ToolRouter.definitions())


@router.post("/tool_calls", response_model=ToolCallResponse)
async def call_tool(body: ToolCallRequest, tools: Router) -> ToolCallResponse:
    call = ToolCall(body.tool_call.id, body.tool_call.function.name, body.tool_call.function.arguments)
    code_interpreter = body.tool_resources.code_interpreter if body.tool_resources else None
    resources = ToolResources(code_interpreter.file_ids if code_interpreter else [])
    result = await tools.call(body.thread_id, call, resources)
    execution = result.run.execution
    step = CodeInterpreterToolCall(
        id=call.id,
        code_interpreter=CodeInterpreterDetails(input=result.code,
                                                outputs=[output_wire(item) for item in result.run.items]),
    )
    return ToolCallResponse(
        tool_call_id=call.id,
        output=result.output,
        status=execution.status,
        step_details=ToolCallsStepDetails(tool_calls=[step]),
        files=[artifact_wire(a) for a in execution.artifacts],
        container_id=result.container_id,
    )


@router.post("/annotations", response_model=TextContentPart)
async def annotate(body: AnnotateRequest, tools: Router) -> TextContentPart:
    annotations = [
        FilePathAnnotationWire(text=a.text, start_index=a.start_index, end_index=a.end_index,
                               file_path=FilePath(file_id=a.file_id))
        for a in tools.annotate(body.thread_id, body.text)
    ]
    return TextContentPart(text=TextValue(value=body.text, annotations=annotations))
