"""The function-tool definitions an assistant server hands to its model (Chat Completions `tools` format)."""

from __future__ import annotations

from typing import Any

CODE_INTERPRETER = "code_interpreter"
FILE_SEARCH = "file_search"

CODE_INTERPRETER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": CODE_INTERPRETER,
        "description": (
            "Run Python code in a stateful Jupyter kernel. Variables, imports and files persist between calls in "
            "the same conversation. Files the user attached, and files you write, are in /mnt/data; every file "
            "you write there and every figure you display is delivered to the user automatically. Refer to a "
            "file in your answer as sandbox:/mnt/data/<name>. There is no internet access. numpy, pandas, "
            "matplotlib, scipy, scikit-learn, PIL and openpyxl are installed."
        ),
        "parameters": {
            "type": "object",
            "properties": {"code": {"type": "string", "description": "The Python code to run."}},
            "required": ["code"],
            "additionalProperties": False,
        },
    },
}


FILE_SEARCH_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": FILE_SEARCH,
        "description": (
            "Search the files attached to this conversation. Returns numbered passages, each with a marker like "
            "【3†report.pdf】. Quote the marker right after any claim that relies on that passage."
        ),
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string", "description": "What to look for, in natural language."}},
            "required": ["query"],
            "additionalProperties": False,
        },
    },
}


def tool_definitions() -> list[dict[str, Any]]:
    return [CODE_INTERPRETER_TOOL, FILE_SEARCH_TOOL]
