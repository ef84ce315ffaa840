"""Sandbox benchmark: prints JSON. Everything is measured in one run, against a baseline from the same run.

- new container to first result with a warm pool (a pooled sandbox waiting), over HTTP (p50/p90/p99);
- cold start: the same with the pool bypassed (a 4g memory limit is never pooled);
- warm round trip: a trivial execute over HTTP (p50/p99, >= 200 runs, after untimed warm-ups);
- baseline: the same round trip straight to a bare kernel container of the same image with jupyter_client;
- idle memory: a sandbox's cgroup memory after it has run one cell and sat idle;
- artifact registration: the after-cell scan of /mnt/data when nothing changed (with 0 and 500 files present),
  and export throughput for a large new file against a plain file copy of the same bytes in the same run.

Run: .venv/bin/python bench/sandbox.py [--runs 300] [--cold 10]   (needs Docker and the sandbox image)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import queue
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, and bench/retrieval.py would shadow the package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import httpx
from jupyter_client.blocking import BlockingKernelClient

from orchestrator.container_files import ContainerFiles, ContainerFileStore
from orchestrator.db import Database
from orchestrator.localserver import Server
from orchestrator.sandbox.image import default_tag
from orchestrator.sandbox.kernel import new_connection_info
from orchestrator.sandbox.workspace import WorkspaceStore
from orchestrator.storage import FileStore


def percentiles(samples_s: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples_s)
    pick = lambda q: ms[min(len(ms) - 1, int(q * len(ms)))]  # noqa: E731
    return {"n": len(ms), "p50_ms": round(pick(0.5), 2), "p90_ms": round(pick(0.9), 2),
            "p99_ms": round(pick(0.99), 2), "mean_ms": round(statistics.fmean(ms), 2)}


def timed(fn, runs: int, warmup: int = 20) -> list[float]:  # noqa: ANN001
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


WARM_UPS = 5


def pool_ready(server: Server) -> float:
    text = httpx.get(f"{server.base_url}/metrics").text
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith("toolshed_pool_ready"))


def first_result(http: httpx.Client, **create: str) -> tuple[str, float]:
    start = time.perf_counter()
    cid = http.post("/containers", json={"name": "bench", **create}).json()["id"]
    assert http.post(f"/containers/{cid}/execute", json={"code": "1"}).json()["status"] == "completed"
    return cid, time.perf_counter() - start


def bench_http(server: Server, runs: int, cold: int, warm: int) -> dict:
    http = httpx.Client(base_url=f"{server.base_url}/v1", timeout=120)
    warm_samples = []
    for _ in range(warm + WARM_UPS):
        while pool_ready(server) < 1:  # untimed: wait for the refill, as an idle server would have
            time.sleep(0.05)
        cid, seconds = first_result(http)
        warm_samples.append(seconds)
        http.delete(f"/containers/{cid}")
    warm_samples = warm_samples[WARM_UPS:]  # the first ones share the CPU with the server's own start-up
    cold_samples, ids = [], []
    for _ in range(cold):
        cid, seconds = first_result(http, memory_limit="4g")
        cold_samples.append(seconds)
        ids.append(cid)

    def trivial() -> None:
        assert http.post(f"/containers/{ids[0]}/execute", json={"code": "1 + 1"}).json()["status"] == "completed"

    warm_rt = timed(trivial, runs)
    time.sleep(3)
    idle = idle_memory_mib(f"toolshed-{ids[-1]}")
    for cid in ids:
        http.delete(f"/containers/{cid}")
    return {"warm_pool_to_first_result": percentiles(warm_samples),
            "cold_start_to_first_result": percentiles(cold_samples), "warm_execute_http": percentiles(warm_rt),
            "idle_sandbox_memory_mib": idle}


def idle_memory_mib(container: str) -> float:
    """cgroup memory of the container less page cache, as `docker stats` reports it."""
    out = subprocess.run(["docker", "stats", "--no-stream", "--format", "{{json .}}", container],
                         capture_output=True, text=True, check=True).stdout
    usage = json.loads(out)["MemUsage"].split("/")[0].strip()
    value, unit = float(usage[:-3]), usage[-3:]
    return round(value * {"KiB": 1 / 1024, "MiB": 1, "GiB": 1024}[unit], 1)


def bench_bare_kernel(runs: int) -> dict:
    """The floor: a container of the same image, its kernel driven directly with jupyter_client, no HTTP."""
    run_dir = Path(tempfile.mkdtemp(prefix="tsb", dir="/tmp"))
    info = new_connection_info("/run/toolshed/kernel")
    (run_dir / "kernel.json").write_text(json.dumps(info))
    os.chown(run_dir, 1000, 1000)
    os.chown(run_dir / "kernel.json", 1000, 1000)
    name = f"toolshed-bench-{secrets.token_hex(4)}"
    subprocess.run(["docker", "run", "-d", "--rm", "--name", name, "--network", "none", "--init", "-u", "1000:1000",
                    "-v", f"{run_dir}:/run/toolshed", "--read-only", "--tmpfs", "/tmp", default_tag()],
                   check=True, capture_output=True)
    client = BlockingKernelClient()
    client.load_connection_info(dict(info, ip=str(run_dir / "kernel")))
    client.start_channels()
    try:
        # Ready means kernel_info answered *and* iopub delivered (a SUB socket misses what precedes its join).
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                client.kernel_info(reply=True, timeout=1)
                client.get_iopub_msg(timeout=1)
                break
            except (TimeoutError, queue.Empty):
                continue

        def trivial() -> None:
            reply = client.execute_interactive("1 + 1", timeout=30, output_hook=lambda msg: None)
            assert reply["content"]["status"] == "ok"

        return {"warm_execute_bare_jupyter_client": percentiles(timed(trivial, runs))}
    finally:
        client.stop_channels()
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)


def bench_artifacts(runs: int, large_mb: int) -> dict:
    """The registration step alone, on a real loop-mounted sandbox disk, through the same library the server uses."""
    root = Path(tempfile.mkdtemp(prefix="toolshed-bench-artifacts-"))
    db = Database(root / "toolshed.db")
    files = FileStore(db, root)
    workspaces = WorkspaceStore(root / "sandboxes", Path(f"/run/toolshed/bench-{secrets.token_hex(3)}"),
                                uid=1000, quota_bytes=(2 * large_mb + 256) << 20)
    collector = ContainerFiles(ContainerFileStore(db), files, workspaces, max_export_bytes=4 * large_mb << 20,
                               max_export_files=1000)
    sandbox_id = f"cntr_bench{secrets.token_hex(4)}"
    data_dir = workspaces.create(sandbox_id, {}).data_dir
    loop = asyncio.new_event_loop()
    collect = lambda: loop.run_until_complete(collector.collect(sandbox_id))  # noqa: E731
    try:
        result: dict = {}
        result["scan_no_new_files_0_present"] = percentiles(timed(collect, runs, warmup=5))
        for i in range(500):
            (data_dir / f"f{i:03}.csv").write_text("a,b\n1,2\n")
        collect()  # registers (and exports) the 500 files once
        result["scan_no_new_files_500_present"] = percentiles(timed(collect, runs, warmup=5))

        payload = os.urandom(1 << 20) * large_mb
        (data_dir / "large.bin").write_bytes(payload)
        start = time.perf_counter()
        [artifact] = collect()
        export_s = time.perf_counter() - start
        assert artifact.file_id is not None and artifact.bytes == len(payload)
        start = time.perf_counter()
        shutil.copyfile(data_dir / "large.bin", root / "plain-copy.bin")
        copy_s = time.perf_counter() - start
        result["export_large_file"] = {"mb": large_mb, "export_mb_per_s": round(large_mb / export_s, 1),
                                       "plain_copy_mb_per_s": round(large_mb / copy_s, 1)}
        return result
    finally:
        loop.close()
        workspaces.remove(sandbox_id)
        db.close()
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--cold", type=int, default=10)
    parser.add_argument("--warm", type=int, default=30)
    parser.add_argument("--large-mb", type=int, default=200)
    args = parser.parse_args()
    server = Server(Path(tempfile.mkdtemp(prefix="toolshed-bench-")), TOOLSHED_POOL_SIZE="2")
    server.start()
    try:
        result = bench_http(server, args.runs, args.cold, args.warm)
    finally:
        server.stop()
        server.remove_containers()
    result |= bench_bare_kernel(args.runs)
    result["artifacts"] = bench_artifacts(args.runs, args.large_mb)
    result["http_overhead_ratio_p50"] = round(
        result["warm_execute_http"]["p50_ms"] / result["warm_execute_bare_jupyter_client"]["p50_ms"], 2)
    result["machine"] = {"cpus": os.cpu_count(), "image": default_tag()}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
