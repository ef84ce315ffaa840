"""The shapes of what a Responses request may hold that its schema leaves open (items, parts, tools,
tool_choice, text.format): anything else is a 400 naming where, before any of it is used."""

from __future__ import annotations

from typing import Any

from orchestrator.errors import InvalidRequest

# Fields that must be strings where present, by item type.
_STRINGS = {
    "message": ("id", "role", "status"), "function_call": ("id", "call_id", "name", "arguments", "status"),
    "function_call_output": ("id", "call_id", "status"), "code_interpreter_call": ("id", "container_id", "status"),
    "file_search_call": ("id", "status"), "reasoning": ("id",), "item_reference": ("id",),
}
PART_TYPES = {"input_text", "input_image", "input_file", "output_text", "text", "summary_text", "reasoning_text",
              "refusal"}
_PART_STRINGS = ("text", "file_id", "image_url", "filename", "file_data", "file_url", "detail", "refusal")
MAX_ID = 256


def _fail(where: str, what: str) -> InvalidRequest:
    return InvalidRequest(f"Invalid '{where}': {what}.", param=where)


def _strings(value: dict[str, Any], names: tuple[str, ...], where: str) -> None:
    for name in names:
        if name in value and value[name] is not None and not isinstance(value[name], str):
            raise _fail(f"{where}.{name}", "expected a string")
    if isinstance(value.get("id"), str) and len(value["id"]) > MAX_ID:
        raise _fail(f"{where}.id", f"longer than {MAX_ID} characters")


def _list_of(value: Any, kind: type, where: str, optional: bool = True) -> None:
    if value is None and optional:
        return
    if not isinstance(value, list) or not all(isinstance(entry, kind) for entry in value):
        raise _fail(where, f"expected a list of {'strings' if kind is str else 'objects'}")


def parts(content: Any, where: str) -> None:
    _list_of(content, dict, where, optional=False)
    for number, part in enumerate(content):
        if part.get("type") not in PART_TYPES:
            raise _fail(f"{where}[{number}].type", f"expected one of {', '.join(sorted(PART_TYPES))}")
        _strings(part, _PART_STRINGS, f"{where}[{number}]")


def item(value: dict[str, Any], kind: str, where: str) -> None:
    """One input item of a known type, its fields the types OpenAI's are."""
    _strings(value, _STRINGS.get(kind, ("id",)), where)
    if kind == "code_interpreter_call":
        _strings(value, ("code",), where)
        _list_of(value.get("outputs"), dict, f"{where}.outputs")
    elif kind == "file_search_call":
        _list_of(value.get("queries") or [], str, f"{where}.queries")
        _list_of(value.get("results"), dict, f"{where}.results")
    elif kind == "function_call_output" and not isinstance(value.get("output"), str):
        parts(value.get("output"), f"{where}.output")


def tools(given: list[dict[str, Any]]) -> None:
    for index, tool in enumerate(given):
        where = f"tools[{index}]"
        if not isinstance(tool.get("type"), str):
            raise _fail(f"{where}.type", "expected a string")
        if tool["type"] == "file_search":
            _list_of(tool.get("vector_store_ids"), str, f"{where}.vector_store_ids", optional=False)
            for name in ("filters", "ranking_options"):
                if tool.get(name) is not None and not isinstance(tool[name], dict):
                    raise _fail(f"{where}.{name}", "expected an object")
            count = tool.get("max_num_results")
            if count is not None and (not isinstance(count, int) or not 1 <= count <= 50):
                raise _fail(f"{where}.max_num_results", "expected an integer from 1 to 50")
        elif tool["type"] == "code_interpreter" and isinstance(tool.get("container"), dict):
            _strings(tool["container"], ("type", "memory_limit"), f"{where}.container")
            _list_of(tool["container"].get("file_ids"), str, f"{where}.container.file_ids")
        elif tool["type"] == "function":
            _strings(tool, ("name", "description"), where)
            if tool.get("parameters") is not None and not isinstance(tool["parameters"], dict):
                raise _fail(f"{where}.parameters", "expected an object")


def tool_choice(choice: Any) -> None:
    if choice is None or isinstance(choice, str):
        return
    _strings(choice, ("type", "name", "mode"), "tool_choice")
    _list_of(choice.get("tools"), dict, "tool_choice.tools")


def text_format(text: dict[str, Any] | None) -> None:
    given = (text or {}).get("format")
    if given is not None and not (isinstance(given, dict) and isinstance(given.get("type"), str)):
        raise _fail("text.format", "expected an object with a type")
