"""The model client against a scripted OpenAI-compatible server over real loopback HTTP: streamed text, tool
calls assembled from fragments, retries on 429/5xx, and failures that name the endpoint without hanging."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from orchestrator.agent.chat import Endpoint, ModelClient, ModelError, endpoint_map
from orchestrator.tools.registry import ToolCall
from tests.scripted_model import ScriptedModel, Turn


@pytest.fixture
def model() -> Iterator[ScriptedModel]:
    scripted = ScriptedModel().start()
    yield scripted
    scripted.stop()


def client_for(model: ScriptedModel, retries: int = 2) -> ModelClient:
    return ModelClient(Endpoint(model.base_url), timeout=10, max_retries=retries)


async def test_text_streams_piece_by_piece_with_usage(model: ScriptedModel) -> None:
    model.say(Turn(text="The answer is x = 1.", pieces=4, prompt_tokens=21))
    pieces: list[str] = []

    async def on_text(piece: str) -> None:
        pieces.append(piece)

    turn = await client_for(model).complete("qwen", [{"role": "user", "content": "3x + 11 = 14"}], on_text=on_text,
                                            temperature=0.2)
    assert turn.text == "The answer is x = 1." and "".join(pieces) == turn.text and len(pieces) == 4
    assert (turn.prompt_tokens, turn.finish_reason) == (21, "stop") and turn.completion_tokens > 0
    sent = model.requests[-1]
    assert (sent["model"], sent["stream"], sent["temperature"]) == ("qwen", True, 0.2)


async def test_parallel_tool_calls_are_assembled_from_fragments(model: ScriptedModel) -> None:
    model.say(Turn(tool_calls=[("get_weather", json.dumps({"city": "Paris"})),
                               ("code_interpreter", json.dumps({"code": "print(1)"}))]))
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    turn = await client_for(model).complete("m", [{"role": "user", "content": "hi"}], tools=tools)
    assert [(c.name, json.loads(c.arguments)) for c in turn.calls] == [("get_weather", {"city": "Paris"}),
                                                                      ("code_interpreter", {"code": "print(1)"})]
    assert all(isinstance(c, ToolCall) and c.id for c in turn.calls) and turn.finish_reason == "tool_calls"
    assert model.requests[-1]["tools"] == tools


async def test_a_429_or_500_is_retried(model: ScriptedModel) -> None:
    model.say(Turn(status=429), Turn(status=503), Turn(text="ok"))
    assert (await client_for(model).complete("m", [{"role": "user", "content": "hi"}])).text == "ok"
    assert len(model.requests) == 3


async def test_lasting_failures_are_model_errors_that_name_the_endpoint(model: ScriptedModel) -> None:
    model.say(*[Turn(status=429)] * 3)
    with pytest.raises(ModelError) as limited:
        await client_for(model).complete("m", [{"role": "user", "content": "hi"}])
    assert limited.value.code == "rate_limit_exceeded" and model.base_url in str(limited.value)
    model.say(*[Turn(status=500)] * 3)
    with pytest.raises(ModelError) as failing:
        await client_for(model).complete("m", [{"role": "user", "content": "hi"}])
    assert failing.value.code == "server_error" and "500" in str(failing.value)


async def test_a_dead_endpoint_fails_fast_and_clearly() -> None:
    dead = ModelClient(Endpoint("http://127.0.0.1:9/v1"), timeout=5, max_retries=1)
    started = time.monotonic()
    with pytest.raises(ModelError) as caught:
        await dead.complete("m", [{"role": "user", "content": "hi"}])
    assert caught.value.code == "server_error" and "127.0.0.1:9" in str(caught.value)
    assert time.monotonic() - started < 10
    with pytest.raises(ModelError, match="TOOLSHED_MODEL_BASE_URL"):
        await ModelClient(None).complete("m", [])


def test_the_model_map_routes_names_to_endpoints() -> None:
    routes = endpoint_map({"local": "http://127.0.0.1:11434/v1",
                           "remote": {"base_url": "http://127.0.0.1:8001/v1", "api_key": "k"}})
    client = ModelClient(Endpoint("http://default/v1"), routes)
    assert client.endpoint("local") == Endpoint("http://127.0.0.1:11434/v1")
    assert client.endpoint("remote") == Endpoint("http://127.0.0.1:8001/v1", "k")
    assert client.endpoint("other") == Endpoint("http://default/v1")
