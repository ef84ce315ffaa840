"""Stored (v2) objects in the shapes openai 1.2.3 parses. Its unions have no discriminator, so every key its
models declare is sent, null where empty: a `file_citation` without `quote`, or a function call without
`output`, would turn into the union's wrong member (../shared/wire/assistants_v1.md §0.2)."""

from __future__ import annotations

from typing import Any

from orchestrator.assistants.managed_stores import file_ids_of

# v1's run statuses: v2's `incomplete` is not among them (1.2.3 would poll it forever), so it shows as failed.
_V1_ERROR_CODES = {"server_error", "rate_limit_exceeded"}
_EXPIRY_SECONDS = 600


def tools(stored: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`file_search` is `retrieval`; a function's `parameters` is required in 1.2.3, `{}` when it has none."""
    shown: list[dict[str, Any]] = []
    for tool in stored:
        if tool["type"] == "file_search":
            shown.append({"type": "retrieval"})
        elif tool["type"] == "function":
            function = tool["function"]
            shown.append({"type": "function", "function": {
                "name": function["name"], "description": function.get("description"),
                "parameters": function.get("parameters") or {}}})
        else:
            shown.append({"type": tool["type"]})
    return shown


def assistant(stored: dict[str, Any]) -> dict[str, Any]:
    return {"id": stored["id"], "object": "assistant", "created_at": stored["created_at"], "name": stored["name"],
            "description": stored["description"], "model": stored["model"], "instructions": stored["instructions"],
            "tools": tools(stored["tools"]), "file_ids": file_ids_of(stored), "metadata": stored["metadata"]}


def thread(stored: dict[str, Any]) -> dict[str, Any]:
    return {"id": stored["id"], "object": "thread", "created_at": stored["created_at"],
            "metadata": stored["metadata"]}


def _annotation(stored: dict[str, Any]) -> dict[str, Any]:
    shown = {key: stored[key] for key in ("type", "text", "start_index", "end_index")}
    if stored["type"] == "file_citation":
        cited = stored["file_citation"]
        shown["file_citation"] = {"file_id": cited["file_id"], "quote": cited.get("quote") or ""}
    else:
        shown["file_path"] = {"file_id": stored["file_path"]["file_id"]}
    return shown


def _content(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Text and image_file parts; v1 has no image_url part, so one a v2 client sent is not shown."""
    shown: list[dict[str, Any]] = []
    for part in parts:
        if part["type"] == "text":
            text = part["text"]
            shown.append({"type": "text", "text": {
                "value": text["value"], "annotations": [_annotation(a) for a in text.get("annotations", [])]}})
        elif part["type"] == "image_file":
            shown.append({"type": "image_file", "image_file": {"file_id": part["image_file"]["file_id"]}})
    return shown


def message(stored: dict[str, Any]) -> dict[str, Any]:
    return {"id": stored["id"], "object": "thread.message", "created_at": stored["created_at"],
            "thread_id": stored["thread_id"], "role": stored["role"], "content": _content(stored["content"]),
            "file_ids": message_file_ids(stored), "assistant_id": stored["assistant_id"],
            "run_id": stored["run_id"], "metadata": stored["metadata"]}


def message_file_ids(stored: dict[str, Any]) -> list[str]:
    return [attachment["file_id"] for attachment in stored.get("attachments") or []]


def message_file(stored: dict[str, Any], file_id: str) -> dict[str, Any]:
    return {"id": file_id, "object": "thread.message.file", "created_at": stored["created_at"],
            "message_id": stored["id"]}


def _error(error: dict[str, Any] | None) -> dict[str, Any] | None:
    if error is None:
        return None
    code = error["code"] if error["code"] in _V1_ERROR_CODES else "server_error"
    return {"code": code, "message": error["message"]}


def run(stored: dict[str, Any], file_ids: list[str]) -> dict[str, Any]:
    """`file_ids`: the assistant's v1 files (the run's own record of them is v2's, which has none)."""
    status, last_error, failed_at = stored["status"], _error(stored["last_error"]), stored["failed_at"]
    if status == "incomplete":
        reason = (stored.get("incomplete_details") or {}).get("reason", "unknown")
        status, last_error = "failed", {"code": "server_error", "message": f"incomplete: {reason}"}
        failed_at = stored.get("completed_at") or stored.get("started_at") or stored["created_at"]
    return {"id": stored["id"], "object": "thread.run", "created_at": stored["created_at"],
            "thread_id": stored["thread_id"], "assistant_id": stored["assistant_id"], "status": status,
            "required_action": stored["required_action"], "last_error": last_error,
            "expires_at": stored["expires_at"] or stored["created_at"] + _EXPIRY_SECONDS,
            "started_at": stored["started_at"], "cancelled_at": stored["cancelled_at"], "failed_at": failed_at,
            "completed_at": stored["completed_at"], "model": stored["model"],
            "instructions": stored["instructions"] or "", "tools": tools(stored["tools"]), "file_ids": file_ids,
            "metadata": stored["metadata"], "usage": stored.get("usage")}


def _tool_call(call: dict[str, Any]) -> dict[str, Any]:
    if call["type"] == "file_search":
        return {"id": call["id"], "type": "retrieval", "retrieval": {}}
    if call["type"] == "function":
        function = call["function"]
        return {"id": call["id"], "type": "function", "function": {
            "name": function["name"], "arguments": function["arguments"], "output": function.get("output")}}
    interpreter = call["code_interpreter"]
    return {"id": call["id"], "type": "code_interpreter", "code_interpreter": {
        "input": interpreter["input"], "outputs": [
            {"type": "logs", "logs": output["logs"]} if output["type"] == "logs"
            else {"type": "image", "image": {"file_id": output["image"]["file_id"]}}
            for output in interpreter["outputs"]]}}


def step(stored: dict[str, Any]) -> dict[str, Any]:
    details = stored["step_details"]
    if details["type"] == "tool_calls":
        details = {"type": "tool_calls", "tool_calls": [_tool_call(call) for call in details["tool_calls"]]}
    else:
        details = {"type": "message_creation",
                   "message_creation": {"message_id": details["message_creation"]["message_id"]}}
    return {"id": stored["id"], "object": "thread.run.step", "created_at": stored["created_at"],
            "run_id": stored["run_id"], "assistant_id": stored["assistant_id"], "thread_id": stored["thread_id"],
            "type": stored["type"], "status": stored["status"], "cancelled_at": stored["cancelled_at"],
            "completed_at": stored["completed_at"], "expired_at": stored["expired_at"],
            "failed_at": stored["failed_at"], "last_error": _error(stored["last_error"]),
            "metadata": stored["metadata"], "step_details": details, "usage": stored.get("usage")}
