"""The one mapper from a tool outcome to its run-step wire shape (`step_details.tool_calls[]` of an Assistants
run step), used by POST /v1/tool_calls and by anything else that shows a tool call as a step."""

from __future__ import annotations

from orchestrator.api.schemas import TextContent, output_wire
from orchestrator.api.tool_schemas import (
    CodeInterpreterDetails,
    CodeInterpreterToolCall,
    FileSearchDetails,
    FileSearchResultWire,
    FileSearchToolCall,
)
from orchestrator.tools.code_interpreter import CodeInterpreterResult
from orchestrator.tools.file_search import FileSearchResult


def tool_call_step(call_id: str,
                   outcome: CodeInterpreterResult | FileSearchResult) -> CodeInterpreterToolCall | FileSearchToolCall:
    if isinstance(outcome, CodeInterpreterResult):
        return CodeInterpreterToolCall(id=call_id, code_interpreter=CodeInterpreterDetails(
            input=outcome.code, outputs=[output_wire(item) for item in outcome.run.items]))
    results = [FileSearchResultWire(file_id=hit.file_id, file_name=hit.filename, score=round(hit.score, 6),
                                    content=[TextContent(text=hit.text)], page=hit.page, marker=source.label)
               for hit, source in zip(outcome.hits, outcome.sources, strict=True)]
    return FileSearchToolCall(id=call_id, file_search=FileSearchDetails(results=results))
