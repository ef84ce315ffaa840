"""A scripted OpenAI-compatible chat-completions server on loopback: the model, which lives outside this
machine, faked over real HTTP. Each request gets the next scripted turn (text, tool calls, or an HTTP error),
streamed as chat.completion.chunk events or answered whole; every request body is kept for assertions."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse


@dataclass
class Turn:
    """One scripted answer: text (streamed in `pieces`), tool calls (name, arguments JSON), or an error status."""

    text: str = ""
    tool_calls: list[tuple[str, str]] = field(default_factory=list)
    status: int = 200
    delay: float = 0.0
    pieces: int = 4
    piece_delay: float = 0.0  # between streamed pieces of text
    prompt_tokens: int = 10
    cut: bool = False  # set when max_tokens cut the turn short


class ScriptedModel:
    def __init__(self) -> None:
        self.turns: deque[Turn] = deque()
        self.requests: list[dict[str, Any]] = []
        self.first_pieces: list[float] = []  # perf_counter() as each streamed answer's first text leaves
        self.port = _free_port()
        app = FastAPI()
        app.post("/v1/chat/completions")(self._complete)
        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def say(self, *turns: Turn) -> None:
        self.turns.extend(turns)

    def start(self) -> ScriptedModel:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the scripted model did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    async def _complete(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append(body)
        turn = self.turns.popleft() if self.turns else Turn(text=f"(no more script) {_last_user_text(body)}")
        turn = _capped(turn, body.get("max_tokens"))
        if turn.delay:
            await asyncio.sleep(turn.delay)
        if turn.status != 200:
            return JSONResponse({"error": {"message": f"scripted {turn.status}", "type": "server_error",
                                           "param": None, "code": None}}, status_code=turn.status)
        if body.get("stream"):
            return StreamingResponse(_chunks(body["model"], turn, self.first_pieces), media_type="text/event-stream")
        return JSONResponse(_whole(body["model"], turn))


def _capped(turn: Turn, max_tokens: int | None) -> Turn:
    """The turn as a real server would cut it at `max_tokens` (a token being a word here): its text shortened,
    its tool calls lost, finish_reason `length`."""
    words = turn.text.split(" ")
    if max_tokens is None or len(words) + 5 * len(turn.tool_calls) <= max_tokens:
        return turn
    return replace(turn, text=" ".join(words[:max_tokens]), tool_calls=[], cut=True)


def _finish(turn: Turn) -> str:
    return "length" if turn.cut else "tool_calls" if turn.tool_calls else "stop"


def _usage(turn: Turn) -> dict[str, int]:
    completion = len(turn.text.split(" ")) + 5 * len(turn.tool_calls)
    return {"prompt_tokens": turn.prompt_tokens, "completion_tokens": completion,
            "total_tokens": turn.prompt_tokens + completion}


def _calls(turn: Turn) -> list[dict[str, Any]]:
    return [{"id": f"call_{n}_{int(time.time() * 1000)}", "type": "function",
             "function": {"name": name, "arguments": arguments}} for n, (name, arguments) in enumerate(turn.tool_calls)]


def _whole(model: str, turn: Turn) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": turn.text or None}
    if turn.tool_calls:
        message["tool_calls"] = _calls(turn)
    return {"id": "chatcmpl-scripted", "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": message,
                         "finish_reason": _finish(turn)}], "usage": _usage(turn)}


async def _chunks(model: str, turn: Turn, first_pieces: list[float]):  # noqa: ANN202 - an async generator of SSE frames
    def frame(delta: dict[str, Any], finish: str | None = None, usage: dict[str, int] | None = None) -> bytes:
        chunk = {"id": "chatcmpl-scripted", "object": "chat.completion.chunk", "created": int(time.time()),
                 "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        if usage is not None:
            chunk["usage"] = usage
        return f"data: {json.dumps(chunk)}\n\n".encode()

    yield frame({"role": "assistant", "content": ""})
    size = max(1, -(-len(turn.text) // turn.pieces)) if turn.text else 1
    for start in range(0, len(turn.text), size):
        if start == 0:
            first_pieces.append(time.perf_counter())
        yield frame({"content": turn.text[start:start + size]})
        await asyncio.sleep(turn.piece_delay)
    for index, call in enumerate(_calls(turn)):
        arguments = call["function"]["arguments"]
        half = len(arguments) // 2
        yield frame({"tool_calls": [{"index": index, "id": call["id"], "type": "function",
                                     "function": {"name": call["function"]["name"], "arguments": arguments[:half]}}]})
        yield frame({"tool_calls": [{"index": index, "function": {"arguments": arguments[half:]}}]})
    yield frame({}, _finish(turn), _usage(turn))
    yield b"data: [DONE]\n\n"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _last_user_text(body: dict[str, Any]) -> str:
    """What the last user message said, so an unscripted answer shows which conversation it belongs to."""
    users = [m for m in body.get("messages", []) if m.get("role") == "user"]
    content = users[-1].get("content", "") if users else ""
    return content if isinstance(content, str) else " ".join(p.get("text", "") for p in content if isinstance(p, dict))
