"""What a remote sandbox host costs (issue 33): two `toolshed serve` servers on this machine, one whose sandboxes
run on the local engine (the baseline: shared disk, IPC sockets) and one whose sandboxes run on a second,
separate dockerd reached over mutual TLS (tests/second_dockerd.py: files through an exec in the keeper, the
kernel's channels over an exec stream). Interleaved in blocks, so both see the same machine: a trivial cell, a
cell that writes a file (found and exported after the cell), a 1 MiB container-file read, a 64 KiB upload, and
a cold sandbox start with its first cell. Sandboxes under runc on both. A third server runs its sandboxes as
kernel pods of a fake Kubernetes API server served from this process (tests/kubernetes_fake.py), whose fake
kubelet runs each pod as local containers: the kernel's channels and the file agent over the pods' exec WebSocket,
as against a cluster, but with no real API server or kubelet hop (those add their own latency on a cluster).
Prints JSON, keeps the raw samples.

Run: .venv/bin/python bench/hosts.py [--runs 100] [--out bench/results/hosts.json]   (needs root, Docker, image)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Run as a script, this file's folder comes first on sys.path; the repository root is where tests/ and the shared
# helpers (bench/sandbox.py, bench/replicas.py) live.
sys.path[:] = [str(ROOT), *(p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent)]

import httpx

from bench.replicas import BLOCK, interleaved
from bench.sandbox import Samples
from orchestrator.localserver import Server
from tests.remote_switch import host_settings, kubernetes_settings, start_engine, stop_engine
from tests.second_dockerd import SecondDockerd

RESULTS = ROOT / "bench" / "results" / "hosts.json"
COMMON = {"TOOLSHED_POOL_SIZE": "0", "TOOLSHED_SANDBOX_RUNTIME": "runc"}
FIGURES = ("execute", "write_file", "read_1mib", "upload_64kib", "cold")


def figures(server: Server) -> dict[str, Callable[[], bool]]:
    http = httpx.Client(base_url=f"{server.base_url}/v1", timeout=120)
    container = http.post("/containers", json={"name": "bench"}).json()["id"]
    data = os.urandom(1 << 20)
    cfile = http.post(f"/containers/{container}/files", files={"file": ("blob.bin", data)}).json()["id"]
    upload = os.urandom(64 << 10)
    counter = iter(range(1 << 30))

    def execute() -> bool:
        return bool(http.post(f"/containers/{container}/execute", json={"code": "print(1 + 1)"})
                    .json()["outputs"][0]["logs"] == "2\n")

    def write_file() -> bool:
        code = f"open('/mnt/data/out-{next(counter) % 8}.txt', 'w').write('x' * 1000)"
        return len(http.post(f"/containers/{container}/execute", json={"code": code}).json()["files"]) == 1

    def read() -> bool:
        return http.get(f"/containers/{container}/files/{cfile}/content").content == data

    def put() -> bool:
        return http.post(f"/containers/{container}/files", files={"file": ("up.bin", upload)}).status_code == 200

    def cold() -> bool:
        made = http.post("/containers", json={"name": "cold"}).json()["id"]
        try:
            return bool(http.post(f"/containers/{made}/execute", json={"code": "print(1 + 1)"})
                        .json()["outputs"][0]["logs"] == "2\n")
        finally:
            http.delete(f"/containers/{made}")

    return dict(zip(FIGURES, (execute, write_file, read, put, cold), strict=True))


def measure(engine: SecondDockerd, cluster: dict[str, str], folder: Path, runs: int,
            cold_runs: int) -> dict[str, Samples]:
    servers: list[Server] = []
    try:
        local = Server(folder / "local", **COMMON)
        remote = Server(folder / "remote", **COMMON, **host_settings(engine))
        pods = Server(folder / "kubernetes", **COMMON, **cluster)
        for server in (local, remote, pods):
            server.start()
            servers.append(server)
        on = {"local": figures(local), "remote": figures(remote), "kubernetes": figures(pods)}
        samples: dict[str, Samples] = {}
        for name in FIGURES:
            count = cold_runs if name == "cold" else runs
            samples |= interleaved(count, {f"{name}_{where}": on[where][name] for where in on})
        return samples
    finally:  # before the folder goes: a local sandbox's disk is mounted in it
        for server in servers:
            server.stop()
            server.remove_containers()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--cold-runs", type=int, default=20)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    engine = start_engine()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            samples = measure(engine, kubernetes_settings(), Path(tmp), args.runs, args.cold_runs)
    finally:
        engine.stop()
        stop_engine()
    summary = {name: s.summary() for name, s in samples.items()}

    def over_local(where: str) -> dict[str, float]:
        return {name: round(summary[f"{name}_{where}"]["p50_ms"] / summary[f"{name}_local"]["p50_ms"], 3)
                for name in FIGURES if summary[f"{name}_local"].get("n") and summary[f"{name}_{where}"].get("n")}
    result = {"machine": {"cpus": os.cpu_count()}, "runs": args.runs, "cold_runs": args.cold_runs, "block": BLOCK,
              "summary": summary, "remote_over_local_p50": over_local("remote"),
              "kubernetes_over_local_p50": over_local("kubernetes"),
              "samples_ms": {name: [round(x * 1000, 3) for x in s.seconds] for name, s in samples.items()}}
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "samples_ms"}, indent=1))


if __name__ == "__main__":
    main()
