"""The one mapper from a tool outcome to its run-step shape (an item of `step_details.tool_calls` of an
Assistants run step, as openai.types.beta.threads.runs.ToolCall), used by POST /v1/tool_calls and by runs."""

from __future__ import annotations

import json
from typing import Any

from orchestrator.tools.cells import Image, Item
from orchestrator.tools.code_interpreter import CodeInterpreterResult
from orchestrator.tools.file_search import FileSearchResult
from retrieval.models import Hit

# The name OpenAI's file_search steps give their default ranker (hybrid search here).
RANKER = "default_2024_08_21"


def output_shape(item: Item) -> dict[str, Any]:
    """A cell output as a code_interpreter step output: logs, or an image file."""
    if isinstance(item, Image):
        return {"type": "image", "image": {"file_id": item.file_id}}
    return {"type": "logs", "logs": item.text}


def code_of(arguments: str) -> str:
    """The `code` of code_interpreter arguments as the model sent them, or "" if they do not parse."""
    try:
        code = json.loads(arguments).get("code", "")
    except (ValueError, AttributeError, RecursionError):
        return ""
    return code if isinstance(code, str) else ""


def tool_call_step(call_id: str, outcome: CodeInterpreterResult | FileSearchResult) -> dict[str, Any]:
    if isinstance(outcome, CodeInterpreterResult):
        return {"id": call_id, "type": "code_interpreter", "code_interpreter": {
            "input": outcome.code, "outputs": [output_shape(item) for item in outcome.run.items]}}
    results = [{"file_id": hit.file_id, "file_name": hit.filename, "score": round(hit.score, 6),
                "content": [{"type": "text", "text": hit.text}], "page": hit.page, "chunk_id": hit.chunk_id,
                "marker": source.label, **score_parts(hit)}
               for hit, source in zip(outcome.hits, outcome.sources, strict=True)]
    return {"id": call_id, "type": "file_search", "file_search": {
        "ranking_options": {"ranker": RANKER, "score_threshold": outcome.score_threshold}, "results": results}}


def score_parts(hit: Hit) -> dict[str, float | None]:
    """The two halves of a hybrid score (None where the hit was not among that side's candidates)."""
    return {"dense_score": None if hit.dense_score is None else round(hit.dense_score, 6),
            "keyword_score": None if hit.keyword_score is None else round(hit.keyword_score, 6)}


def without_result_content(step: dict[str, Any]) -> dict[str, Any]:
    """A run step as OpenAI serves it unless asked for
    `include[]=step_details.tool_calls[*].file_search.results[*].content`: file_search results without their
    text."""
    calls = step.get("step_details", {}).get("tool_calls")
    if not calls or not any(call["type"] == "file_search" for call in calls):
        return step
    trimmed = [{**call, "file_search": {**call["file_search"], "results": [
        {key: value for key, value in result.items() if key != "content"}
        for result in call["file_search"].get("results", [])]}} if call["type"] == "file_search" else call
        for call in calls]
    return {**step, "step_details": {**step["step_details"], "tool_calls": trimmed}}
