"""A run's options as the model endpoint takes them: `tool_choice` (hosted tools are functions there) and
`response_format`, checked when the run is created."""

from __future__ import annotations

from typing import Any

from orchestrator.errors import InvalidRequest


def check_tool_choice(run: dict[str, Any]) -> None:
    """A named tool must be one the run has; InvalidRequest otherwise."""
    choice = run["tool_choice"]
    if not isinstance(choice, dict):
        return
    names = {tool["function"]["name"] if tool["type"] == "function" else tool["type"] for tool in run["tools"]}
    wanted = choice["function"]["name"] if choice["type"] == "function" and "function" in choice else choice["type"]
    if choice["type"] == "function" and "function" not in choice:
        raise InvalidRequest("tool_choice of type function needs function.name.", param="tool_choice")
    if wanted not in names:
        raise InvalidRequest(f"tool_choice names '{wanted}', which is not among the run's tools.",
                             param="tool_choice")


def model_tool_choice(choice: Any) -> Any:
    """The run's tool_choice as chat completions take it: hosted tools are functions there."""
    if isinstance(choice, dict) and choice["type"] != "function":
        return {"type": "function", "function": {"name": choice["type"]}}
    return None if choice == "auto" else choice


def model_format(response_format: Any) -> Any:
    return None if response_format in (None, "auto") else response_format
