"""What forwarding between replicas costs (issue 32): two `toolshed serve` replicas on one PostgreSQL (tests'
own, on loopback), a container held by A, and a trivial cell executed on it through A (the baseline) and
through B (forwarded to A), interleaved in blocks so both see the same machine. Also a 1 MiB container file read
both ways. Prints JSON, keeps the raw samples.

Run: .venv/bin/python bench/replicas.py [--runs 200] [--out bench/results/replicas.json]   (needs Docker + image)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Run as a script, this file's folder comes first on sys.path; the repository root is where tests/ and the shared
# Samples (bench/sandbox.py) live.
sys.path[:] = [str(ROOT), *(p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent)]

import httpx

from bench.sandbox import WARM_UPS, Samples
from orchestrator.localserver import Server
from tests.postgres_server import running_postgres

RESULTS = ROOT / "bench" / "results" / "replicas.json"
KEY = "sk-bench-replicas"
CELL = {"code": "x = 1 + 1\nprint(x)"}
BLOCK = 10


def replica(data_dir: Path, url: str) -> Server:
    server = Server(data_dir, TOOLSHED_DATABASE_URL=url, TOOLSHED_API_KEYS=json.dumps([KEY]), TOOLSHED_POOL_SIZE="0")
    server.env["TOOLSHED_REPLICA_URL"] = server.base_url
    server.start()
    return server


def interleaved(runs: int, pairs: dict[str, Callable[[], bool]]) -> dict[str, Samples]:
    """Each figure's runs, taken BLOCK at a time in turn, after WARM_UPS of each."""
    samples = {name: Samples() for name in pairs}
    for fn in pairs.values():
        for _ in range(WARM_UPS):
            fn()
    for _ in range(0, runs, BLOCK):
        for name, fn in pairs.items():
            for _ in range(BLOCK):
                samples[name].time(fn)
    return samples


def measure(a: Server, b: Server, runs: int) -> dict[str, Samples]:
    auth = {"Authorization": f"Bearer {KEY}"}
    through_a = httpx.Client(base_url=f"{a.base_url}/v1", headers=auth, timeout=60)
    through_b = httpx.Client(base_url=f"{b.base_url}/v1", headers=auth, timeout=60)
    container = through_a.post("/containers", json={"name": "bench"}).json()["id"]
    data = os.urandom(1 << 20)
    cfile = through_a.post(f"/containers/{container}/files", files={"file": ("blob.bin", data)}).json()["id"]

    def execute(http: httpx.Client) -> Callable[[], bool]:
        return lambda: http.post(f"/containers/{container}/execute", json=CELL).json()["outputs"][0]["logs"] == "2\n"

    def read(http: httpx.Client) -> Callable[[], bool]:
        return lambda: http.get(f"/containers/{container}/files/{cfile}/content").content == data

    return interleaved(runs, {"execute_direct": execute(through_a), "execute_forwarded": execute(through_b),
                              "read_1mib_direct": read(through_a), "read_1mib_forwarded": read(through_b)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    with running_postgres() as postgres, tempfile.TemporaryDirectory() as tmp:
        url = postgres.new_database(f"bench_{uuid.uuid4().hex[:8]}")
        a = replica(Path(tmp) / "a", url)
        try:
            b = replica(Path(tmp) / "b", url)
            try:
                samples = measure(a, b, args.runs)
            finally:
                b.stop()
                b.remove_containers()
        finally:
            a.stop()
            a.remove_containers()
    summary = {name: s.summary() for name, s in samples.items()}
    ratio = {kind: round(summary[f"{kind}_forwarded"]["p50_ms"] / summary[f"{kind}_direct"]["p50_ms"], 3)
             for kind in ("execute", "read_1mib")}
    result = {"machine": {"cpus": os.cpu_count()}, "runs": args.runs, "block": BLOCK, "summary": summary,
              "forwarded_over_direct_p50": ratio,
              "samples_ms": {name: [round(x * 1000, 3) for x in s.seconds] for name, s in samples.items()}}
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "samples_ms"}, indent=1))


if __name__ == "__main__":
    main()
