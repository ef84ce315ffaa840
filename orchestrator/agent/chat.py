"""The model endpoint: any OpenAI-compatible chat-completions server (Ollama, vLLM, llama.cpp, LiteLLM, OpenAI).
The only module that imports `openai`, whose client brings the streaming, timeouts and retries with backoff on
429 and 5xx; its failures become one `ModelError` that names the endpoint."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import openai
from openai import AsyncStream
from openai.types.chat import ChatCompletion, ChatCompletionChunk

TextHook = Callable[[str], Awaitable[None]]


@dataclass(frozen=True)
class ToolCall:
    """A function the model called: its call id, the function's name and its arguments as the JSON text sent."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class Endpoint:
    base_url: str
    api_key: str = "unused"


@dataclass(frozen=True)
class ModelTurn:
    """What the model said in one completion: text, the functions it called, and the tokens it took."""

    text: str
    calls: list[ToolCall] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None


class ModelError(Exception):
    """The model endpoint failed; `code` is what a run's last_error says: server_error or rate_limit_exceeded."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class ModelClient:
    def __init__(self, default: Endpoint | None, routes: dict[str, Endpoint] | None = None, *,
                 timeout: float = 120.0, max_retries: int = 3) -> None:
        self._default = default
        self._routes = routes or {}
        self._timeout = timeout
        self._max_retries = max_retries
        self._clients: dict[Endpoint, openai.AsyncOpenAI] = {}

    def endpoint(self, model: str) -> Endpoint:
        endpoint = self._routes.get(model, self._default)
        if endpoint is None:
            raise ModelError("server_error", f"No model endpoint is configured for '{model}': set "
                                             "TOOLSHED_MODEL_BASE_URL (or TOOLSHED_MODEL_MAP).")
        return endpoint

    def _client(self, endpoint: Endpoint) -> openai.AsyncOpenAI:
        if endpoint not in self._clients:
            self._clients[endpoint] = openai.AsyncOpenAI(base_url=endpoint.base_url, api_key=endpoint.api_key,
                                                         timeout=self._timeout, max_retries=self._max_retries)
        return self._clients[endpoint]

    async def complete(self, model: str, messages: list[dict[str, Any]], *, on_text: TextHook | None = None,
                       max_chars: int | None = None, **options: Any) -> ModelTurn:
        """One streamed completion; `on_text` sees each piece of text as it comes. Past `max_chars` of text and
        call arguments the stream is dropped and the turn ends with finish_reason `output_limit`. `options` are
        passed on as chat-completions parameters (tools, tool_choice, temperature, top_p, response_format,
        max_tokens)."""
        endpoint = self.endpoint(model)
        given = {name: value for name, value in options.items() if value is not None}
        try:
            # A plain POST of the body as given: the messages and options are already OpenAI-shaped, and the
            # SDK's per-field transform of `create` costs ~0.2 ms a message (36 ms for a 200-message thread).
            stream = await self._client(endpoint).post(
                "/chat/completions", cast_to=ChatCompletion, stream=True, stream_cls=AsyncStream[ChatCompletionChunk],
                body={"model": model, "messages": messages, "stream": True, "stream_options": {"include_usage": True},
                      **given})
            async with stream:
                return await _collect(stream, on_text, max_chars)
        except openai.RateLimitError as exc:
            raise ModelError("rate_limit_exceeded", f"The model endpoint {endpoint.base_url} kept answering 429 "
                                                    f"(rate limited) after {self._max_retries} retries.") from exc
        except openai.APIStatusError as exc:
            raise ModelError("server_error", f"The model endpoint {endpoint.base_url} answered {exc.status_code}: "
                                             f"{exc.message}") from exc
        except (openai.APIConnectionError, openai.APITimeoutError) as exc:
            raise ModelError("server_error", f"The model endpoint {endpoint.base_url} could not be reached: "
                                             f"{exc}") from exc

    async def models(self, timeout: float = 5.0) -> list[dict[str, Any]]:
        """The models a user can name: what the default endpoint's `GET /models` lists (id, created, owned_by as
        it says them), then each TOOLSHED_MODEL_MAP name it did not list. An endpoint that fails or is not
        OpenAI-shaped lists nothing; this is a menu, not a health check, so it waits `timeout` at most."""
        listed: list[dict[str, Any]] = []
        if self._default is not None:
            client = self._client(self._default).with_options(timeout=timeout, max_retries=0)
            try:
                page = await client.models.list()
                # The SDK builds these without validation: a field the endpoint left out is missing, not None.
                listed = [{"id": m.id, "object": "model", "created": getattr(m, "created", None) or 0,
                           "owned_by": getattr(m, "owned_by", None) or ""}
                          for m in page.data if isinstance(getattr(m, "id", None), str)]
            except (openai.APIError, ValueError, TypeError):
                listed = []  # unreachable, an error status, or a body that is no model list
        named = {m["id"] for m in listed}
        return listed + [{"id": name, "object": "model", "created": 0, "owned_by": "toolshed"}
                         for name in self._routes if name not in named]

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()


async def _collect(stream: Any, on_text: TextHook | None, max_chars: int | None) -> ModelTurn:
    text: list[str] = []
    calls: dict[int, dict[str, str]] = {}
    prompt = completion = written = 0
    finish = None
    async for chunk in stream:
        if max_chars is not None and written > max_chars:
            # A model that will not stop must not grow a message, and the server's memory, without bound.
            finish = "output_limit"
            break
        if chunk.usage is not None:
            prompt, completion = chunk.usage.prompt_tokens, chunk.usage.completion_tokens
        for choice in chunk.choices:
            delta = choice.delta
            finish = choice.finish_reason or finish
            if delta.content:
                written += len(delta.content)
                text.append(delta.content)
                if on_text is not None:
                    await on_text(delta.content)
            for call in delta.tool_calls or []:
                entry = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
                entry["id"] = call.id or entry["id"]
                if call.function is not None:
                    entry["name"] += call.function.name or ""
                    entry["arguments"] += call.function.arguments or ""
                    written += len(call.function.arguments or "")
    found = [ToolCall(entry["id"] or f"call_{index}", entry["name"], entry["arguments"] or "{}")
             for index, entry in sorted(calls.items())]
    return ModelTurn("".join(text), found, prompt, completion, finish)


def endpoint_map(raw: dict[str, Any]) -> dict[str, Endpoint]:
    """TOOLSHED_MODEL_MAP's JSON: {"model": "http://host/v1"} or {"model": {"base_url": …, "api_key": …}}."""
    routes = {}
    for model, target in raw.items():
        target = json.loads(target) if isinstance(target, str) and target.startswith("{") else target
        routes[model] = Endpoint(target) if isinstance(target, str) else Endpoint(**target)
    return routes
