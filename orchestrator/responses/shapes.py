"""The Response object and what a request's options become: its body as stored, as a client sees it (`include`
applied, Toolshed's own keys removed), and the tools, tool_choice and text format as the chat model takes them."""

from __future__ import annotations

import time
from typing import Any

from orchestrator.agent.loop import Usage
from orchestrator.errors import InvalidRequest
from orchestrator.tools.definitions import CODE_INTERPRETER, CODE_INTERPRETER_TOOL, FILE_SEARCH, FILE_SEARCH_TOOL

HOSTED = {CODE_INTERPRETER: CODE_INTERPRETER_TOOL, FILE_SEARCH: FILE_SEARCH_TOOL}
OUTPUTS = "code_interpreter_call.outputs"
RESULTS = "file_search_call.results"
# What `include` may ask for; the rest of OpenAI's values name things Toolshed does not produce, so they are
# accepted and change nothing.
INCLUDABLE = {OUTPUTS, RESULTS, "message.output_text.logprobs", "reasoning.encrypted_content",
              "message.input_image.image_url", "web_search_call.results", "web_search_call.action.sources",
              "computer_call_output.output.image_url"}
_SEARCH_DEFAULTS = {"filters": None, "max_num_results": 20, "ranking_options": {"ranker": "auto",
                                                                                "score_threshold": 0.0}}


def new_body(response_id: str, request: dict[str, Any], status: str) -> dict[str, Any]:
    """A Response as it starts: every key OpenAI sends, null where there is no value yet."""
    conversation = request.get("conversation")
    return {
        "id": response_id, "object": "response", "created_at": int(time.time()), "status": status,
        "background": bool(request.get("background")), "completed_at": None, "error": None,
        "incomplete_details": None, "instructions": request.get("instructions"),
        "max_output_tokens": request.get("max_output_tokens"), "max_tool_calls": request.get("max_tool_calls"),
        "model": request["model"], "output": [], "parallel_tool_calls": request.get("parallel_tool_calls", True),
        "previous_response_id": request.get("previous_response_id"),
        "conversation": {"id": conversation} if conversation else None, "store": request.get("store", True),
        "temperature": request.get("temperature", 1.0), "top_p": request.get("top_p", 1.0),
        "truncation": request.get("truncation") or "disabled", "tool_choice": request.get("tool_choice") or "auto",
        "tools": [echoed(tool) for tool in request.get("tools") or []], "metadata": request.get("metadata") or {},
        "text": request.get("text") or {"format": {"type": "text"}}, "user": request.get("user"),
        "reasoning": request.get("reasoning") or {"effort": None, "summary": None}, "usage": None,
    }


def echoed(tool: dict[str, Any]) -> dict[str, Any]:
    """A tool as the Response echoes it, with OpenAI's defaults filled in."""
    if tool.get("type") == FILE_SEARCH:
        return {**_SEARCH_DEFAULTS, **tool}
    return tool


def usage(total: Usage) -> dict[str, Any]:
    return {"input_tokens": total.prompt_tokens, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": total.completion_tokens, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": total.prompt_tokens + total.completion_tokens}


def present(value: Any, include: frozenset[str]) -> Any:
    """A stored body or item as a client gets it: Toolshed's own `_` keys dropped, hosted-tool outputs and results
    only where `include` asks for them (null otherwise)."""
    if isinstance(value, list):
        return [present(entry, include) for entry in value]
    if not isinstance(value, dict):
        return value
    shown = {key: present(entry, include) for key, entry in value.items() if not key.startswith("_")}
    if shown.get("type") == "code_interpreter_call" and OUTPUTS not in include:
        shown["outputs"] = None
    if shown.get("type") == "file_search_call" and RESULTS not in include:
        shown["results"] = None
    return shown


def check_include(include: list[str] | None) -> frozenset[str]:
    unknown = sorted(set(include or []) - INCLUDABLE)
    if unknown:
        raise InvalidRequest(f"Invalid include value(s): {', '.join(unknown)}.", param="include")
    return frozenset(include or [])


def chat_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The request's tools as chat-completions function definitions (hosted tools as the functions the loop runs
    here; a Responses function tool is flat and is nested again)."""
    defined = []
    for index, tool in enumerate(tools):
        kind = tool.get("type")
        if kind in HOSTED:
            defined.append(HOSTED[kind])
        elif kind == "function":
            if not isinstance(tool.get("name"), str) or not tool["name"] or tool["name"] in HOSTED:
                raise InvalidRequest("A function tool needs a name (not code_interpreter or file_search).",
                                     param=f"tools[{index}].name")
            function = {"name": tool["name"], "parameters": tool.get("parameters") or {"type": "object"}}
            for optional in ("description", "strict"):
                if tool.get(optional) is not None:
                    function[optional] = tool[optional]
            defined.append({"type": "function", "function": function})
        else:
            raise InvalidRequest(f"Tool type {kind!r} is not supported here; Toolshed runs code_interpreter and "
                                 "file_search, and hands function calls back.", param=f"tools[{index}].type")
    return defined


def chat_tool_choice(choice: Any, tools: list[dict[str, Any]]) -> tuple[Any, list[dict[str, Any]]]:
    """(the chat-completions tool_choice, the tools the model is offered) for a Responses tool_choice."""
    if choice in (None, "auto"):
        return None, tools
    if choice in ("none", "required"):
        return choice, tools
    if not isinstance(choice, dict):
        raise InvalidRequest("tool_choice must be auto, none, required or an object.", param="tool_choice")
    if choice.get("type") == "allowed_tools":
        names = {entry.get("name") or entry.get("type") for entry in choice.get("tools") or []}
        allowed = [tool for tool in tools if tool["function"]["name"] in names]
        return ("required" if choice.get("mode") == "required" else None), allowed
    name = choice.get("name") if choice.get("type") == "function" else choice.get("type")
    if name not in {tool["function"]["name"] for tool in tools}:
        raise InvalidRequest(f"tool_choice names {name!r}, which is not among the request's tools.",
                             param="tool_choice")
    return {"type": "function", "function": {"name": name}}, tools


def chat_format(text: dict[str, Any] | None) -> dict[str, Any] | None:
    """`text.format` as a chat-completions response_format."""
    given = (text or {}).get("format") or {"type": "text"}
    kind = given.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        schema = {key: given[key] for key in ("name", "schema", "strict", "description") if key in given}
        return {"type": "json_schema", "json_schema": schema}
    raise InvalidRequest(f"text.format type {kind!r} is not one of text, json_object, json_schema.",
                         param="text.format.type")
