"""What a run gives its model and its tools: the starting conversation, the tool resources, and the options
(`tool_choice`, where hosted tools are functions, and `response_format`), checked when the run is created."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import mimetypes
from typing import Any

from orchestrator.agent.budget import last_messages
from orchestrator.assistants.service import Assistants
from orchestrator.assistants.store import ObjectStore
from orchestrator.db import PageRequest
from orchestrator.errors import InvalidRequest
from orchestrator.sandbox.runtime import CONTAINER_DATA_DIR
from orchestrator.services.storage import safe_filename
from orchestrator.tools.registry import SearchSettings, ToolResources
from retrieval.errors import StoreNotFound

# More than any context holds (each message costs a few tokens at least), fewer than a thread may have.
_MAX_PROMPT_MESSAGES = 10_000
_STORE_POLL_SECONDS = 0.2


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


def prompt(assistants: Assistants, run: dict[str, Any]) -> list[dict[str, Any]]:
    """The conversation a run starts from: its instructions, then the thread's messages, oldest first (the last
    n only, under `truncation_strategy` `last_messages`)."""
    conversation: list[dict[str, Any]] = []
    instructions = "\n\n".join(part for part in (run.get("instructions"), run.get("additional_instructions"),
                                                 _files_note(assistants, run)) if part)
    if instructions:
        conversation.append({"role": "system", "content": instructions})
    # The newest messages: whatever has to go to fit the model's context is the oldest.
    newest, _ = assistants.messages(run["thread_id"], PageRequest(limit=_MAX_PROMPT_MESSAGES, order="desc"), None)
    for message in last_messages(newest[::-1], run["truncation_strategy"]):
        text = "\n".join(part["text"]["value"] for part in message["content"] if part["type"] == "text")
        images = [_image(assistants, part) for part in message["content"] if part["type"] != "text"]
        if message["role"] == "user" and images:
            # Chat completions take images only from users, as content parts beside the text.
            conversation.append({"role": "user", "content": [{"type": "text", "text": text}, *images]})
        else:
            conversation.append({"role": message["role"], "content": text})
    return conversation


def _files_note(assistants: Assistants, run: dict[str, Any]) -> str | None:
    """Where code_interpreter finds the run's files (the assistant's, the thread's and those attached to its
    messages): a model is never told otherwise, and would guess paths."""
    if not any(tool["type"] == "code_interpreter" for tool in run["tools"]):
        return None
    file_ids = resources(assistants.objects, run).code_interpreter_file_ids
    if not file_ids:
        return None
    paths = [f"{CONTAINER_DATA_DIR}/{safe_filename(assistants.files.get(file_id).filename)}" for file_id in file_ids]
    return "Files the user uploaded for code_interpreter are in its sandbox at: " + ", ".join(paths)


def _image(assistants: Assistants, part: dict[str, Any]) -> dict[str, Any]:
    """A message's image as a chat-completions content part: an image_url as given, an uploaded image_file as a
    data URL of its bytes (the model's server cannot reach this one's files)."""
    if part["type"] == "image_url":
        return {"type": "image_url", "image_url": part["image_url"]}
    stored = assistants.files.get(part["image_file"]["file_id"])
    kind = mimetypes.guess_type(stored.filename)[0] or "image/png"
    data = base64.b64encode(assistants.files.blob_path(stored.id).read_bytes()).decode()
    return {"type": "image_url", "image_url": {"url": f"data:{kind};base64,{data}",
                                               **({"detail": part["image_file"]["detail"]}
                                                  if part["image_file"].get("detail") else {})}}


def resources(objects: ObjectStore, run: dict[str, Any]) -> ToolResources:
    """The files and vector stores a run's hosted tools may use: the assistant's and the thread's."""
    thread = objects.get("threads", run["thread_id"])
    assistant = objects.get("assistants", run["assistant_id"])
    files: list[str] = []
    stores: list[str] = []
    for resources in (assistant["tool_resources"], thread["tool_resources"]):
        files += resources.get("code_interpreter", {}).get("file_ids", [])
        stores += resources.get("file_search", {}).get("vector_store_ids", [])
    return ToolResources(list(dict.fromkeys(files)), list(dict.fromkeys(stores)))


async def stores_ready(assistants: Assistants, run: dict[str, Any]) -> None:
    """Wait while a vector store the run searches is still indexing (a file attached just before the run), as
    OpenAI's runs do; the run's expiry bounds the wait."""
    if not any(tool["type"] == "file_search" for tool in run["tools"]):
        return
    for store_id in resources(assistants.objects, run).vector_store_ids:
        with contextlib.suppress(StoreNotFound):  # deleted meanwhile: file_search says so to the model
            while assistants.vector_stores.get(store_id).status == "in_progress":
                await asyncio.sleep(_STORE_POLL_SECONDS)


def search_settings(run: dict[str, Any]) -> SearchSettings:
    """The run's file_search tool settings: its `max_num_results` and `ranking_options.score_threshold`."""
    for tool in run["tools"]:
        if tool["type"] == "file_search":
            settings = tool.get("file_search") or {}
            ranking = settings.get("ranking_options") or {}
            return SearchSettings(settings.get("max_num_results"), ranking.get("score_threshold"))
    return SearchSettings()
