"""Assistants API benchmark: prints JSON, keeps the raw samples, compares each figure with a baseline measured in
the same run. The model is the scripted chat-completions server (tests/scripted_model.py) on loopback, answering at
once, so what is measured is Toolshed's own overhead. Every run is streamed and timed from the POST to the run's
final event; a failure is any run that does not end `completed`.

- text-only run: create to `completed`, against the same answer streamed from the model directly;
- run with one code_interpreter call on a warm thread: create to `completed`, against the same work done by hand
  (model call, POST /v1/tool_calls on a warm thread, model call);
- first token: from the model sending its first piece of text to the client's first `thread.message.delta`,
  against the same gap for a client streaming from the model directly;
- 50 concurrent text-only runs on 50 threads: per-run latency, wall time, failures.

Run: .venv/bin/python bench/assistants.py [--runs 100] [--out bench/results/assistants.json]   (needs Docker + image)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Run as a script, this file's folder comes first on sys.path, and bench/retrieval.py would shadow the package;
# the repository root is where the scripted model (tests/) and the shared Samples (bench/sandbox.py) live.
sys.path[:] = [str(ROOT), *(p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent)]

import httpx

from bench.sandbox import WARM_UPS, Samples, code_call
from orchestrator.localserver import Server
from tests.scripted_model import ScriptedModel, Turn

RESULTS = ROOT / "bench" / "results" / "assistants.json"
ANSWER = "The answer is forty-two, as the code above shows."
CODE = json.dumps({"code": "print(6 * 7)"})


def stream_run(http: httpx.Client, thread_id: str, assistant_id: str, marks: list[float] | None = None) -> bool:
    """One streamed run to its end; True if it completed. `marks` gets the time of the first message delta."""
    with http.stream("POST", f"/threads/{thread_id}/runs", json={"assistant_id": assistant_id, "stream": True}) as r:
        last = None
        for line in r.iter_lines():
            if line.startswith("event: "):
                last = line.removeprefix("event: ")
                if last == "thread.message.delta" and marks is not None and len(marks) == 0:
                    marks.append(time.perf_counter())
            if last in ("thread.run.completed", "thread.run.failed", "thread.run.incomplete"):
                break
    return last == "thread.run.completed"


class Direct:
    """The baseline client: the same answers streamed from the model with no Toolshed in between, over a kept-alive
    connection as Toolshed's own model client keeps."""

    def __init__(self, model: ScriptedModel) -> None:
        self.model = model
        self.http = httpx.Client(base_url=model.base_url, timeout=60)


def direct_answer(direct: Direct, marks: list[float] | None = None, history: list[dict] | None = None) -> bool:
    body = {"model": "scripted", "stream": True, "messages": history or [{"role": "user", "content": "?"}]}
    with direct.http.stream("POST", "/chat/completions", json=body) as r:
        for line in r.iter_lines():
            if marks is not None and not marks and '"content": "' in line and '"content": ""' not in line:
                marks.append(time.perf_counter())
    return r.status_code == 200


def text_runs(http: httpx.Client, direct: Direct, runs: int) -> dict[str, Samples]:
    model = direct.model
    assistant = http.post("/assistants", json={"model": "scripted"}).json()["id"]
    threads = [http.post("/threads", json={}).json()["id"] for _ in range(runs + WARM_UPS)]
    run, straight = Samples(), Samples()
    for index, thread_id in enumerate(threads):
        model.say(Turn(text=ANSWER), Turn(text=ANSWER))
        if index < WARM_UPS:
            stream_run(http, thread_id, assistant)
            direct_answer(direct)
            continue
        run.time(lambda: stream_run(http, thread_id, assistant))  # noqa: B023 - called at once
        straight.time(lambda: direct_answer(direct))
    return {"text_run_create_to_completed": run, "text_run_baseline_model_direct": straight}


def code_runs(http: httpx.Client, direct: Direct, runs: int) -> dict[str, Samples]:
    """Runs on one warm thread (its sandbox is up after the warm-ups), interleaved with the same work by hand."""
    model = direct.model
    assistant = http.post("/assistants", json={"model": "scripted", "tools": [{"type": "code_interpreter"}]}).json()
    thread_id = http.post("/threads", json={}).json()["id"]

    history: list[dict] = []  # grows as the run's thread does: one answer per run

    def by_hand() -> bool:
        model.say(Turn(tool_calls=[("code_interpreter", CODE)]), Turn(text=ANSWER))
        ok = direct_answer(direct, history=history)
        ok = ok and http.post("/tool_calls", json=code_call("bench_by_hand", "print(6 * 7)")).status_code == 200
        history.append({"role": "assistant", "content": ANSWER})
        return ok and direct_answer(direct, history=history)

    def through_a_run() -> bool:
        model.say(Turn(tool_calls=[("code_interpreter", CODE)]), Turn(text=ANSWER))
        return stream_run(http, thread_id, assistant["id"])

    run, baseline = Samples(), Samples()
    for _ in range(WARM_UPS):
        through_a_run()
        by_hand()
    for _ in range(runs):
        run.time(through_a_run)
        baseline.time(by_hand)
    return {"code_run_create_to_completed_warm_thread": run, "code_run_baseline_model_and_tool_calls": baseline}


def first_token(http: httpx.Client, direct: Direct, runs: int) -> dict[str, list[float]]:
    """Seconds from the model's first piece of text to the client's first message delta, through a run and
    direct; the answer streams in 20 pieces 5 ms apart, as a model speaks."""
    model = direct.model
    assistant = http.post("/assistants", json={"model": "scripted"}).json()["id"]
    through, straight = [], []
    for index in range(runs + WARM_UPS):
        thread_id = http.post("/threads", json={}).json()["id"]
        for gaps, call in ((through, lambda m: stream_run(http, thread_id, assistant, m)),  # noqa: B023
                           (straight, lambda m: direct_answer(direct, m))):
            model.say(Turn(text=ANSWER * 4, pieces=20, piece_delay=0.005))
            marks: list[float] = []
            before = len(model.first_pieces)
            if call(marks) and marks and len(model.first_pieces) > before and index >= WARM_UPS:
                gaps.append(marks[0] - model.first_pieces[before])
    return {"first_token_to_first_message_delta": through, "first_token_baseline_model_direct": straight}


async def concurrent_runs(base_url: str, count: int) -> tuple[Samples, float]:
    async with httpx.AsyncClient(base_url=f"{base_url}/v1", timeout=300) as http:
        assistant = (await http.post("/assistants", json={"model": "scripted"})).json()["id"]
        threads = [(await http.post("/threads", json={})).json()["id"] for _ in range(count)]
        samples = Samples()

        async def one(thread_id: str) -> None:
            start = time.perf_counter()
            try:
                async with http.stream("POST", f"/threads/{thread_id}/runs",
                                       json={"assistant_id": assistant, "stream": True}) as r:
                    events = [line async for line in r.aiter_lines() if line.startswith("event: ")]
                ok = "event: thread.run.completed" in events
            except httpx.HTTPError:
                ok = False
            if ok:
                samples.seconds.append(time.perf_counter() - start)
            else:
                samples.failures += 1

        wall = time.perf_counter()
        await asyncio.gather(*(one(thread_id) for thread_id in threads))
        return samples, time.perf_counter() - wall


def gap_summary(seconds: list[float]) -> dict:
    samples = Samples()
    samples.seconds = seconds
    return samples.summary()


Measured = tuple[dict[str, Samples], dict[str, list[float]]]


def run_bench(doc: str, results: Path, measure: Callable[[httpx.Client, Direct, int], Measured],
              concurrent: Callable[[str, int], Awaitable[tuple[Samples, float]]], concurrent_name: str,
              added: dict[str, tuple[str, str]]) -> None:
    """One benchmark run against a fresh server and the scripted model: `measure`'s figures and first-token gaps,
    then `concurrent` requests at once; `added` names each overhead figure (through, baseline); JSON printed and
    written with every raw sample."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--concurrent", type=int, default=50)
    parser.add_argument("--out", type=Path, default=results)
    args = parser.parse_args()

    model = ScriptedModel().start()
    server = Server(Path(tempfile.mkdtemp(prefix="toolshed-bench-")), TOOLSHED_MODEL_BASE_URL=model.base_url,
                    TOOLSHED_LOG_LEVEL="warning")
    server.start()
    try:
        direct = Direct(model)
        with httpx.Client(base_url=f"{server.base_url}/v1", timeout=120) as http:
            figures, gaps = measure(http, direct, args.runs)
        model.turns.clear()
        samples, wall = asyncio.run(concurrent(server.base_url, args.concurrent))
        figures[concurrent_name.format(n=args.concurrent)] = samples
    finally:
        server.stop()
        server.remove_containers()
        model.stop()

    summary: dict = {name: samples.summary() for name, samples in figures.items()}
    summary.update({name: gap_summary(seconds) for name, seconds in gaps.items()})
    for name, (through, baseline) in added.items():
        summary[name] = round(summary[through]["p50_ms"] - summary[baseline]["p50_ms"], 2)
    summary[f"concurrent_{args.concurrent}_wall_s"] = round(wall, 2)
    summary["machine"] = {"cpus": os.cpu_count(), "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    raw = {name: samples.raw() for name, samples in figures.items()}
    raw.update({name: [round(s * 1000, 3) for s in seconds] for name, seconds in gaps.items()})
    args.out.write_text(json.dumps({"summary": summary, "raw_ms": raw}, indent=1))
    print(json.dumps(summary, indent=2))


def main() -> None:
    run_bench(__doc__, RESULTS, lambda http, direct, runs: (
        {**text_runs(http, direct, runs), **code_runs(http, direct, runs)}, first_token(http, direct, runs)),
        concurrent_runs, "concurrent_{n}_text_runs", {
            "text_run_overhead_p50_ms": ("text_run_create_to_completed", "text_run_baseline_model_direct"),
            "code_run_overhead_p50_ms": ("code_run_create_to_completed_warm_thread",
                                         "code_run_baseline_model_and_tool_calls"),
            "first_token_added_p50_ms": ("first_token_to_first_message_delta", "first_token_baseline_model_direct")})


if __name__ == "__main__":
    main()
