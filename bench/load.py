"""Load: many clients at once for minutes, mixing code executions, uploads, ingestion, search and Assistants runs.

One server on loopback (its own data dir and namespace) with a scripted chat-completions model of tests/ (which,
unscripted, answers with the last user message, so a run's answer shows which thread it belongs to). Every
operation carries a nonce and its result is checked against it: an execution must print its own nonce, a
download must be its own upload, an ingested file must be found by its own nonce, a run's answer must quote its
own message. Anything else counts as lost or crossed. The baseline, measured in the same run, is each kind done
by one client alone before the load starts.

Reports per kind: count, throughput, p50/p90/p99 latency (loaded and alone), failures, 5xx; lost or crossed
outputs; the server's resident memory before and after. Raw samples are kept in bench/results/load.json.

Run: .venv/bin/python bench/load.py [--clients 8] [--seconds 120] [--out bench/results/load.json]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import secrets
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent] + [str(ROOT)]

import httpx
import openai
from openai import OpenAI

from orchestrator.localserver import Server
from tests.scripted_model import ScriptedModel

RESULTS = ROOT / "bench" / "results" / "load.json"
KINDS = ("execute", "upload", "search", "ingest", "run")


class Wrong(Exception):
    """An answer that is not the one this operation asked for: lost or crossed."""


class Load:
    def __init__(self, server: Server, store: str, assistant: str) -> None:
        self.base = server.base_url
        self.client = OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0, timeout=300)
        self.store, self.assistant = store, assistant

    def execute(self, who: str, nonce: str) -> None:
        response = httpx.post(f"{self.base}/v1/tool_calls", timeout=300, json={
            "thread_id": f"load-{who}", "tool_call": {"id": "c", "type": "function", "function": {
                "name": "code_interpreter", "arguments": {"code": f"x = {nonce!r}\nprint(x[::-1])"}}}})
        response.raise_for_status()
        if nonce[::-1] not in response.json()["output"]:
            raise Wrong(f"execution {nonce} printed {response.json()['output'][:80]!r}")

    def upload(self, who: str, nonce: str) -> None:
        data = f"{who} {nonce}\n".encode() * 100
        made = self.client.files.create(file=(f"{nonce}.txt", io.BytesIO(data)), purpose="assistants")
        back = self.client.files.content(made.id).read()
        self.client.files.delete(made.id)
        if back != data:
            raise Wrong(f"upload {nonce} came back different")

    def search(self, who: str, nonce: str) -> None:
        hits = self.client.vector_stores.search(self.store, query="sandboxed code execution")
        if not hits.data:
            raise Wrong("a search of the shared store found nothing")

    def ingest(self, who: str, nonce: str) -> None:
        made = self.client.files.create(file=(f"{nonce}.md", io.BytesIO(
            f"# Note {nonce}\n\nThe load test wrote the marker {nonce} for client {who}.".encode())),
            purpose="assistants")
        store = self.client.vector_stores.create(name=f"load {nonce}", file_ids=[made.id])
        deadline = time.monotonic() + 120
        while self.client.vector_stores.retrieve(store.id).file_counts.in_progress:
            if time.monotonic() > deadline:
                raise Wrong(f"ingestion of {nonce} did not finish in 120 s")
            time.sleep(0.1)
        hits = self.client.vector_stores.search(store.id, query=nonce)
        self.client.vector_stores.delete(store.id)
        self.client.files.delete(made.id)
        if not hits.data or nonce not in hits.data[0].content[0].text:
            raise Wrong(f"ingested {nonce} was not found by its marker")

    def run(self, who: str, nonce: str) -> None:
        thread = self.client.beta.threads.create(messages=[{"role": "user", "content": f"remember {nonce}"}])
        run = self.client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=self.assistant,
                                                            poll_interval_ms=100)
        answer = self.client.beta.threads.messages.list(thread.id, order="desc").data[0]
        self.client.beta.threads.delete(thread.id)
        text = answer.content[0].text.value if answer.content and answer.content[0].type == "text" else ""
        if run.status != "completed" or nonce not in text:
            raise Wrong(f"run for {nonce} ended {run.status} with {text[:80]!r}")


def timed(operation: Callable[[str, str], None], who: str) -> dict[str, object]:
    started = time.perf_counter()
    outcome = "ok"
    try:
        operation(who, secrets.token_hex(6))
    except Wrong:
        outcome = "wrong"
    except openai.APIStatusError as exc:
        outcome = f"http {exc.status_code}"
    except httpx.HTTPStatusError as exc:
        outcome = f"http {exc.response.status_code}"
    except (openai.APIConnectionError, httpx.TransportError) as exc:
        outcome = f"connection: {type(exc).__name__}"
    return {"ms": round((time.perf_counter() - started) * 1000, 2), "outcome": outcome}


def percentile(values: list[float], q: float) -> float:
    return round(statistics.quantiles(values, n=100, method="inclusive")[q - 1], 1) if len(values) > 1 else \
        (values[0] if values else 0.0)


def summary(samples: list[dict[str, object]], seconds: float) -> dict[str, object]:
    ms = [float(s["ms"]) for s in samples]  # type: ignore[arg-type]
    return {"count": len(samples), "per_second": round(len(samples) / seconds, 2),
            "p50_ms": percentile(ms, 50), "p90_ms": percentile(ms, 90), "p99_ms": percentile(ms, 99),
            "failures": sum(s["outcome"] != "ok" for s in samples),
            "http_5xx": sum(str(s["outcome"]).startswith("http 5") for s in samples),
            "lost_or_crossed": sum(s["outcome"] == "wrong" for s in samples)}


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--alone", type=int, default=5, help="baseline operations of each kind, one client")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    model = ScriptedModel().start()
    server = Server(Path(tempfile.mkdtemp(prefix="toolshed-load-")), TOOLSHED_MODEL_BASE_URL=model.base_url)
    server.start()
    try:
        client = OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0, timeout=300)
        doc = client.files.create(file=("notes.md", io.BytesIO(b"# Toolshed\n\nToolshed runs sandboxed code "
                                                               b"execution and file search on one machine.")),
                                  purpose="assistants")
        shared = client.vector_stores.create(name="load shared", file_ids=[doc.id])
        while client.vector_stores.retrieve(shared.id).file_counts.in_progress:
            time.sleep(0.2)
        assistant = client.beta.assistants.create(model="scripted", instructions="Answer.")
        load = Load(server, shared.id, assistant.id)
        operations = {kind: getattr(load, kind) for kind in KINDS}
        alone = {kind: [timed(op, "alone") for _ in range(args.alone)] for kind, op in operations.items()}
        assert server.process is not None
        memory_before = rss_mib(server.process.pid)
        samples: dict[str, list[dict[str, object]]] = {kind: [] for kind in KINDS}
        lock = threading.Lock()
        deadline = time.monotonic() + args.seconds

        def client_loop(index: int) -> None:
            turn = index
            while time.monotonic() < deadline:
                kind = KINDS[turn % len(KINDS)]
                turn += 1
                sample = timed(operations[kind], f"c{index}")
                with lock:
                    samples[kind].append(sample)

        started = time.monotonic()
        workers = [threading.Thread(target=client_loop, args=(i,)) for i in range(args.clients)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        elapsed = time.monotonic() - started
        memory_after = rss_mib(server.process.pid)
        healthy = httpx.get(f"{server.base_url}/health", timeout=10).json()["status"]
    finally:
        server.stop()
        server.remove_containers()
        model.stop()
    every = [s for kind in KINDS for s in samples[kind]]
    result = {
        "clients": args.clients, "seconds": round(elapsed, 1), "health_after": healthy,
        "total": summary(every, elapsed),
        "kinds": {kind: {"loaded": summary(samples[kind], elapsed),
                         "alone": summary(alone[kind], 1.0) | {"per_second": None}} for kind in KINDS},
        "server_rss_mib": {"before": memory_before, "after": memory_after,
                           "growth": round(memory_after - memory_before, 1)},
        "samples": {"loaded": samples, "alone": alone},
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({key: value for key, value in result.items() if key != "samples"}, indent=1))


if __name__ == "__main__":
    main()
