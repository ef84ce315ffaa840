"""Responses API benchmark: prints JSON, keeps the raw samples, compares each figure with a baseline measured in
the same run. The model is the scripted chat-completions server (tests/scripted_model.py) on loopback, answering at
once, so what is measured is Toolshed's own overhead. Every response is streamed and timed from the POST to its
terminal event; a failure is any response that does not end `completed`.

- code-interpreter response in a warm container: create to `response.completed`, against the same work by hand
  (model call, POST /v1/containers/{id}/execute on the same container, model call), interleaved;
- first token: from the model sending its first piece of text to the client's first `response.output_text.delta`,
  against the same gap for a client streaming from the model directly;
- 50 concurrent text-only responses: per-response latency, wall time, failures.

Run: .venv/bin/python bench/responses.py [--runs 100] [--out bench/results/responses.json]   (needs Docker + image)
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Run as a script, this file's folder comes first on sys.path, and bench/retrieval.py would shadow the package.
sys.path[:] = [str(ROOT), *(p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent)]

import httpx

from bench.assistants import ANSWER, CODE, Direct, direct_answer, run_bench
from bench.sandbox import WARM_UPS, Samples
from tests.scripted_model import Turn

RESULTS = ROOT / "bench" / "results" / "responses.json"
TERMINAL = ("response.completed", "response.failed", "response.incomplete")


def stream_response(http: httpx.Client, body: dict, marks: list[float] | None = None) -> bool:
    """One streamed response to its end; True if it completed. `marks` gets the time of the first text delta."""
    with http.stream("POST", "/responses", json={**body, "stream": True}) as r:
        last = None
        for line in r.iter_lines():
            if line.startswith("event: "):
                last = line.removeprefix("event: ")
                if last == "response.output_text.delta" and marks is not None and not marks:
                    marks.append(time.perf_counter())
            if last in TERMINAL:
                break
    return last == "response.completed"


def code_responses(http: httpx.Client, direct: Direct, runs: int) -> dict[str, Samples]:
    """Responses in one warm container, interleaved with the same model calls and execution by hand."""
    model = direct.model
    container = http.post("/containers", json={"name": "bench"}).json()["id"]
    tools = [{"type": "code_interpreter", "container": container}]

    def through_a_response() -> bool:
        model.say(Turn(tool_calls=[("code_interpreter", CODE)]), Turn(text=ANSWER))
        return stream_response(http, {"model": "scripted", "input": "Compute 6*7.", "tools": tools})

    def by_hand() -> bool:
        model.say(Turn(tool_calls=[("code_interpreter", CODE)]), Turn(text=ANSWER))
        ok = direct_answer(direct)
        executed = http.post(f"/containers/{container}/execute", json={"code": "print(6 * 7)"})
        return ok and executed.status_code == 200 and direct_answer(direct)

    response, baseline = Samples(), Samples()
    for _ in range(WARM_UPS):
        through_a_response()
        by_hand()
    for _ in range(runs):
        response.time(through_a_response)
        baseline.time(by_hand)
    return {"code_response_create_to_completed_warm_container": response,
            "code_response_baseline_model_and_execute": baseline}


def first_token(http: httpx.Client, direct: Direct, runs: int) -> dict[str, list[float]]:
    """Seconds from the model's first piece of text to the client's first text delta, through a response and
    direct; the answer streams in 20 pieces 5 ms apart, as a model speaks."""
    model = direct.model
    through, straight = [], []
    for index in range(runs + WARM_UPS):
        for gaps, call in ((through, lambda m: stream_response(http, {"model": "scripted", "input": "?"}, m)),
                           (straight, lambda m: direct_answer(direct, m))):
            model.say(Turn(text=ANSWER * 4, pieces=20, piece_delay=0.005))
            marks: list[float] = []
            before = len(model.first_pieces)
            if call(marks) and marks and len(model.first_pieces) > before and index >= WARM_UPS:
                gaps.append(marks[0] - model.first_pieces[before])
    return {"first_token_to_first_text_delta": through, "first_token_baseline_model_direct": straight}


async def concurrent_responses(base_url: str, count: int) -> tuple[Samples, float]:
    async with httpx.AsyncClient(base_url=f"{base_url}/v1", timeout=300) as http:
        samples = Samples()

        async def one(index: int) -> None:
            start = time.perf_counter()
            try:
                async with http.stream("POST", "/responses", json={"model": "scripted", "input": f"q{index}",
                                                                   "stream": True}) as r:
                    events = [line async for line in r.aiter_lines() if line.startswith("event: ")]
                ok = "event: response.completed" in events
            except httpx.HTTPError as exc:
                samples.fail(repr(exc))
                return
            if ok:
                samples.seconds.append(time.perf_counter() - start)
            else:
                samples.fail(f"ended with {events[-1:]}")

        wall = time.perf_counter()
        await asyncio.gather(*(one(index) for index in range(count)))
        return samples, time.perf_counter() - wall


def main() -> None:
    run_bench(__doc__, RESULTS, lambda http, direct, runs: (code_responses(http, direct, runs),
                                                             first_token(http, direct, runs)),
              concurrent_responses, "concurrent_{n}_text_responses", {
                  "code_response_overhead_p50_ms": ("code_response_create_to_completed_warm_container",
                                                    "code_response_baseline_model_and_execute"),
                  "first_token_added_p50_ms": ("first_token_to_first_text_delta",
                                               "first_token_baseline_model_direct")})


if __name__ == "__main__":
    main()
