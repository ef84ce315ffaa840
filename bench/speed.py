"""Speed (issue 34): the warm path against the floor and Jupyter Kernel Gateway, the cold burst of new threads, and
the memory of a pooled sandbox. One run writes bench/results/speed.json (raw samples kept) and prints each goal met.
The clients are in bench/speed_clients.py; where a cold start's time goes is bench/speed_breakdown.py's job.

- warm path: the cell `x = 1 + 1` / `print(x)` on one warm thread, interleaved block by block (the order rotates
  each block) on: the floor (jupyter_client straight to a plain ipykernel on the host: no HTTP, no container);
  Toolshed's POST /v1/containers/{id}/execute and POST /v1/tool_calls (same sandbox) from a lean http.client;
  Jupyter Kernel Gateway (its own venv, bench/kernel_gateway_env.sh) over REST + websocket. Every client sets
  TCP_NODELAY, and TCP_QUICKACK before each request where the OS has it (the gateway leaves Nagle on);
- cold burst: N brand-new thread_ids, one cell each over POST /v1/tool_calls, released together by a barrier once
  the server settled; end-to-end seconds per thread, failures, and the server's own acquire/capacity-wait figures;
- memory: idle memory of sandboxes taken from the pool (bench/sandbox.py's measure), per TOOLSHED_POOL_PRELOAD.

Run: .venv/bin/python bench/speed.py [--runs 300] [--burst 50] [--runtime runsc|runc] [--pool-size N] [--repeat 3]
     [--preload '[]'] [--preloads '[]' '["numpy"]']   (needs Docker and the sandbox image; takes the machine)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(ROOT), *(p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent)]

import httpx

from bench.sandbox import Samples, code_call, delete_all, idle_memory_mib, memory_summary, runtime_server, settle
from bench.speed_clients import BROKEN, CELL, Floor, KernelGateway, Lean, guarded
from orchestrator.config import Settings
from orchestrator.localserver import Server

RESULTS = ROOT / "bench" / "results" / "speed.json"
GOALS = {"toolshed_over_kernel_gateway": 1.0, "toolshed_over_floor": 1.1, "burst_p50_ms": 2000.0,
         "burst_p99_ms": 5000.0, "burst_failures": 0, "pooled_memory_mib": 45.0}


def warm_path(server: Server, runs: int, blocks: int) -> dict[str, Samples]:
    """The cell on each system in turn, `runs` timed runs each in `blocks` blocks, after untimed warm-ups."""
    lean = Lean("127.0.0.1", server.port, timeout=120)
    thread = f"speed-warm-{uuid.uuid4().hex[:8]}"
    status, first = lean.post("/v1/tool_calls", code_call(thread, CELL))
    assert status == 200, first
    container = first["container_id"]

    def execute() -> bool:
        status, answer = lean.post(f"/v1/containers/{container}/execute", {"code": CELL})
        return status == 200 and answer["status"] == "completed" and answer["outputs"][-1]["logs"] == "2\n"

    def tool_calls() -> bool:
        status, answer = lean.post("/v1/tool_calls", code_call(thread, CELL))
        return status == 200 and answer["output"] == "2\n"

    with Floor() as floor, KernelGateway() as gateway:
        calls = {"floor": floor.run, "toolshed_execute": execute, "toolshed_tool_calls": tool_calls,
                 "kernel_gateway": gateway.run}
        result = {name: Samples() for name in calls}
        warm_ups = Samples()  # untimed; also reconnects a keep-alive the server closed while the clients started
        for call in calls.values():
            for _ in range(20):
                warm_ups.time(guarded(call))
        per_block = max(1, runs // blocks)
        for block in range(blocks):
            order = list(calls)[block % len(calls):] + list(calls)[:block % len(calls)]
            for name in order:
                for _ in range(per_block):
                    result[name].time(guarded(calls[name]))
    lean.close()
    delete_all(server, [container])
    return result


def metric_lines(server: Server, *names: str) -> dict[str, float]:
    text = httpx.get(f"{server.base_url}/metrics").text
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line.startswith(names)}


def burst(server: Server, threads: int, pool_size: int) -> tuple[Samples, dict[str, float]]:
    """`threads` new thread_ids, one cell each, released together; the server's acquire figures over the burst."""
    settle(server, pool_size)
    watched = ("toolshed_sandbox_acquire_seconds_sum", "toolshed_sandbox_acquire_seconds_count",
               "toolshed_capacity_wait_seconds_sum", "toolshed_pool_takes")
    before = metric_lines(server, *watched)
    barrier, samples, made = threading.Barrier(threads + 1), Samples(), []
    lock = threading.Lock()

    def one(lean: Lean) -> None:
        barrier.wait()
        start = time.perf_counter()
        try:
            status, answer = lean.post("/v1/tool_calls", code_call(f"speed-burst-{uuid.uuid4().hex}", CELL))
            ok, why = status == 200 and answer.get("output") == "2\n", f"{status}: {json.dumps(answer)[:300]}"
        except BROKEN as exc:
            ok, why, answer = False, repr(exc), {}
        with lock:
            samples.seconds.append(time.perf_counter() - start) if ok else samples.fail(why)
            made.extend([answer["container_id"]] if answer.get("container_id") else [])

    workers = [threading.Thread(target=one, args=(Lean("127.0.0.1", server.port, timeout=300),))
               for _ in range(threads)]
    for worker in workers:
        worker.start()
    barrier.wait()
    released = time.perf_counter()
    for worker in workers:
        worker.join()
    after = metric_lines(server, *watched)
    delete_all(server, made)
    settle(server, pool_size)  # the burst's sandboxes removed and the pool full again (settle's check is coarse)
    server_side = {name: round(value - before.get(name, 0.0), 3) for name, value in after.items()}
    return samples, server_side | {"pool_full_again_s_after_release": round(time.perf_counter() - released, 1)}


def idle_cpu_cores(seconds: float = 10.0) -> float:
    """CPU cores every container on the machine uses while nothing runs (Docker's cgroup, v1 as here): a full
    pool's idle cost. Other containers on the machine count too."""
    usage = Path("/sys/fs/cgroup/cpuacct/docker/cpuacct.usage")
    if not usage.exists():
        return float("nan")
    before = int(usage.read_text())
    time.sleep(seconds)
    return round((int(usage.read_text()) - before) / 1e9 / seconds, 3)


def pooled_memory(server: Server, count: int) -> list[float]:
    """Idle memory of sandboxes taken from the pool after one cell, as bench/sandbox.py measures it."""
    http = httpx.Client(base_url=f"{server.base_url}/v1", timeout=120)
    ids = []
    for _ in range(count):
        settle(server, 1)
        ids.append(http.post("/containers", json={"name": "speed-idle"}).json()["id"])
        http.post(f"/containers/{ids[-1]}/execute", json={"code": "1"})
    time.sleep(3)
    sizes = idle_memory_mib(ids)
    delete_all(server, ids)
    return sizes


@contextmanager
def serve(runtime: str | None, **env: str) -> Iterator[Server]:
    """A server with these settings; with runtime None, the server's default runtime."""
    if runtime is not None:
        with runtime_server(runtime, **env) as server:
            yield server
        return
    server = Server(Path(tempfile.mkdtemp(prefix="toolshed-speed-")), **{f"TOOLSHED_{k}": v for k, v in env.items()})
    server.start()
    try:
        yield server
    finally:
        server.stop()
        server.remove_containers()


def one_run(args: argparse.Namespace) -> tuple[dict, dict]:
    """Every figure once; (summary, raw samples)."""
    pool_size = Settings().pool_size if args.pool_size is None else args.pool_size
    chosen = {"POOL_PRELOAD": args.preload} if args.preload is not None else {}
    with serve(args.runtime, POOL_SIZE=str(pool_size), **chosen) as server:
        engine = httpx.get(f"{server.base_url}/health").json()["engine"]
        settle(server, pool_size)
        idle = idle_cpu_cores()
        warm = warm_path(server, args.runs, args.blocks)
        cold, server_side = burst(server, args.burst, pool_size)
        memory = {"default": pooled_memory(server, args.memory_count)} if pool_size else {}
    for preload in args.preloads:
        with serve(args.runtime, POOL_SIZE="1", POOL_PRELOAD=preload) as server:
            memory[preload] = pooled_memory(server, args.memory_count)
    summary: dict = {name: samples.summary() for name, samples in warm.items()}
    summary |= {"burst": cold.summary(), "burst_server_side": server_side, "engine": engine, "pool_size": pool_size,
                "idle_pool_cpu_cores": idle,
                "pooled_memory": {name: memory_summary(sizes) for name, sizes in memory.items() if sizes}}
    raw = {name: samples.raw() for name, samples in warm.items()} | {"burst": cold.raw(), "memory_mib": memory}
    return summary, raw


def headline(summary: dict) -> dict[str, float]:
    """The figures the goals are about, from one run."""
    p50 = {name: summary[name].get("p50_ms", float("nan")) for name in
           ("floor", "toolshed_execute", "toolshed_tool_calls", "kernel_gateway")}
    best = min(p50["toolshed_execute"], p50["toolshed_tool_calls"])
    memory = summary["pooled_memory"].get("default", {}).get("p50_mib", float("nan"))
    return {**{f"{name}_p50_ms": value for name, value in p50.items()},
            "toolshed_over_kernel_gateway": round(best / p50["kernel_gateway"], 3),
            "toolshed_over_floor": round(best / p50["floor"], 3),
            "burst_p50_ms": summary["burst"].get("p50_ms", float("nan")),
            "burst_p99_ms": summary["burst"].get("p99_ms", float("nan")),
            "burst_failures": summary["burst"]["failures"], "pooled_memory_mib": memory}


def verdicts(runs: list[dict[str, float]]) -> dict[str, dict]:
    """Each goal against every run: met only if every run meets it."""
    return {goal: {"goal": limit, "runs": [run[goal] for run in runs], "met": all(run[goal] <= limit for run in runs)}
            for goal, limit in GOALS.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300, help="timed runs per system on the warm path")
    parser.add_argument("--blocks", type=int, default=10, help="interleaving blocks the runs are split into")
    parser.add_argument("--burst", type=int, default=50, help="brand-new threads released together")
    parser.add_argument("--runtime", choices=("runsc", "runc"), help="default: the server's (auto)")
    parser.add_argument("--pool-size", type=int, help="default: the server's")
    parser.add_argument("--memory-count", type=int, default=5, help="pooled sandboxes whose memory is measured")
    parser.add_argument("--preload", help="TOOLSHED_POOL_PRELOAD of the server under test (default: the server's)")
    parser.add_argument("--preloads", nargs="*", default=[], help="TOOLSHED_POOL_PRELOAD values to measure too")
    parser.add_argument("--repeat", type=int, default=1, help="whole runs, for the spread")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    runs = [one_run(args) for _ in range(args.repeat)]
    heads = [headline(summary) for summary, _ in runs]
    spread = {name: {"min": min(h[name] for h in heads), "max": max(h[name] for h in heads)} for name in heads[0]}
    goals = verdicts(heads)
    report = {"goals": goals, "spread": spread, "runs": [summary for summary, _ in runs],
              "args": {k: v for k, v in vars(args).items() if k != "out"},
              "machine": {"cpus": len(os.sched_getaffinity(0)),
                          "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({**report, "raw_ms": [raw for _, raw in runs]}, indent=1))
    print(json.dumps(report, indent=1))
    for goal, verdict in goals.items():
        print(f"{'MET    ' if verdict['met'] else 'NOT MET'} {goal} <= {verdict['goal']}: {verdict['runs']}")


if __name__ == "__main__":
    main()
