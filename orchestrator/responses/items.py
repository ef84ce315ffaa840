"""Items, the Responses API's unit of conversation: a request's `input` made into stored items (each with an id),
checked, and a context of items turned into the chat-completions messages the agent loop sends the model.

Hosted-tool items replay as what they were (the model's call, then its output: code and logs, a query and its
results); a turn's consecutive calls share one assistant message, since a chat-completions server wants every
call's output right after the message that made it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from orchestrator.errors import InvalidRequest
from orchestrator.responses import checks
from orchestrator.tools.definitions import CODE_INTERPRETER, FILE_SEARCH
from retrieval.ids import new_id

CALLS = ("function_call", "code_interpreter_call", "file_search_call")
_PREFIXES = {"message": "msg_", "function_call": "fc_", "function_call_output": "fco_",
             "code_interpreter_call": "ci_", "file_search_call": "fs_", "reasoning": "rs_"}
# More than a context holds; a request past it is refused before any of it is stored or sent.
MAX_ITEMS = 10_000
_TEXT_PARTS = ("input_text", "output_text", "text", "summary_text", "reasoning_text")

ImageSource = Callable[[str], str]  # a file id -> a data URL the model's server can read


def normalize(given: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A request's `input` as stored items: a string is one user message; every item gets its type filled in, a
    status and an id (kept when the client sent one, as replayed output items carry theirs)."""
    raw = [{"role": "user", "content": given}] if isinstance(given, str) else given
    if len(raw) > MAX_ITEMS:
        raise InvalidRequest(f"Invalid 'input': array too long. Expected an array with maximum length {MAX_ITEMS}, "
                             f"but got an array with length {len(raw)} instead.", param="input",
                             code="array_above_max_length")
    items = []
    for index, item in enumerate(raw):
        kind = item.get("type") or ("message" if "role" in item else None)
        if not isinstance(kind, str) or kind not in (*_PREFIXES, "item_reference"):
            raise InvalidRequest(f"Invalid input item {index}: unknown type {item.get('type')!r}.",
                                 param=f"input[{index}].type")
        checks.item(item, kind, f"input[{index}]")
        if kind == "item_reference":
            items.append(dict(item))
            continue
        stored = {**item, "type": kind, "id": item.get("id") or new_id(_PREFIXES[kind], 24)}
        if kind == "message":
            stored["content"] = _parts(item.get("content"), item.get("role"), index)
            stored.setdefault("status", "completed")
        elif kind in ("function_call_output", "function_call"):
            _require(item, ("call_id",) if kind == "function_call_output" else ("call_id", "name", "arguments"), index)
            stored.setdefault("status", "completed")
        items.append(stored)
    return items


def _require(item: dict[str, Any], fields: tuple[str, ...], index: int) -> None:
    for name in fields:
        if not isinstance(item.get(name), str):
            raise InvalidRequest(f"Invalid input item {index}: '{name}' is required.", param=f"input[{index}].{name}")


def _parts(content: Any, role: Any, index: int) -> list[dict[str, Any]]:
    if role not in ("user", "assistant", "system", "developer"):
        raise InvalidRequest(f"Invalid input item {index}: role must be user, assistant, system or developer.",
                             param=f"input[{index}].role")
    if isinstance(content, str):
        return [{"type": "output_text" if role == "assistant" else "input_text", "text": content,
                 **({"annotations": []} if role == "assistant" else {})}]
    checks.parts(content, f"input[{index}].content")
    return list(content)


def check_outputs(context: list[dict[str, Any]]) -> None:
    """Every function_call_output answers a function_call before it (OpenAI's 400 otherwise)."""
    called: set[str] = set()
    for item in context:
        if item["type"] == "function_call":
            called.add(item["call_id"])
        elif item["type"] == "function_call_output" and item["call_id"] not in called:
            raise InvalidRequest(f"No tool call found for function call output with call_id {item['call_id']}.",
                                 param="input")


def to_messages(items: list[dict[str, Any]], image: ImageSource) -> list[dict[str, Any]]:
    """The context as chat-completions messages (system and developer instructions are the caller's to add)."""
    messages: list[dict[str, Any]] = []
    hosted_outputs: list[dict[str, Any]] = []
    calling = False
    for item in items:
        kind = item["type"]
        if kind in CALLS:
            call = _as_call(item)
            if calling:
                messages[-1]["tool_calls"].append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
                calling = True
            if kind != "function_call":
                hosted_outputs.append({"role": "tool", "tool_call_id": call["id"], "content": _hosted_output(item)})
            continue
        calling = False
        messages += hosted_outputs
        hosted_outputs = []
        if kind == "function_call_output":
            messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": _output_text(item)})
        elif kind == "message":
            messages.append(_message(item, image))
    return messages + hosted_outputs


def _as_call(item: dict[str, Any]) -> dict[str, Any]:
    if item["type"] == "function_call":
        return {"id": item["call_id"], "type": "function",
                "function": {"name": item["name"], "arguments": item["arguments"]}}
    if item["type"] == "code_interpreter_call":
        name, arguments = CODE_INTERPRETER, {"code": item.get("code") or ""}
    else:
        name, arguments = FILE_SEARCH, {"query": " ".join(item.get("queries") or [])}
    return {"id": item["id"], "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}


def _hosted_output(item: dict[str, Any]) -> str:
    """What the model read when the call ran: kept beside the stored item (`_model_output`, never sent), or
    rebuilt from a replayed item's outputs and results."""
    if "_model_output" in item:
        return str(item["_model_output"])
    if item["type"] == "code_interpreter_call":
        logs = "".join(o.get("logs", "") for o in item.get("outputs") or [] if o.get("type") == "logs")
        return logs or "(no output)"
    results = item.get("results") or []
    return "\n\n".join(f"{r.get('filename', '')}: {r.get('text', '')}" for r in results) or "No results."


def _output_text(item: dict[str, Any]) -> str:
    output = item.get("output")
    if isinstance(output, str):
        return output
    return "\n".join(part.get("text", "") for part in output or [] if isinstance(part, dict))


def _message(item: dict[str, Any], image: ImageSource) -> dict[str, Any]:
    role = "system" if item["role"] == "developer" else item["role"]
    parts = item["content"]
    text = "".join(part.get("text", "") for part in parts if part.get("type") in _TEXT_PARTS)
    images = [_image_part(part, image) for part in parts if part.get("type") == "input_image"]
    files = [f"[file: {part.get('filename') or part.get('file_id') or 'attached'}]" for part in parts
             if part.get("type") == "input_file"]
    if files:
        text = "\n".join([text, *files]) if text else "\n".join(files)
    if role == "user" and images:
        return {"role": "user", "content": [{"type": "text", "text": text}, *images]}
    return {"role": role, "content": text}


def _image_part(part: dict[str, Any], image: ImageSource) -> dict[str, Any]:
    url = part.get("image_url") or (image(part["file_id"]) if part.get("file_id") else None)
    if not url:
        raise InvalidRequest("An input_image needs an image_url or a file_id.", param="input")
    detail = {"detail": part["detail"]} if part.get("detail") else {}
    return {"type": "image_url", "image_url": {"url": url, **detail}}
