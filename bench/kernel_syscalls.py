"""Why a warm cell costs about 3x under gVisor on this machine (issue 34): how many system calls the sandbox's kernel
makes per trivial cell, and what one system call costs under each OCI runtime.

1. System calls per cell: a kernel on the host, run under `strace -f -c` while `--cells` trivial cells run
   (`x = 1 + 1` / `print(x)`): the image's kernel (sandbox_image/toolshed_kernel.py on the installed ipykernel,
   as the sandbox starts it) and, as the baseline, stock ipykernel. Counted by name; the idle second before the
   cells is counted too (a few dozen calls).
2. One system call's price inside a container of the sandbox image, under runc and under runsc: `getpid` in a
   loop (glibc does not cache it), `--rounds` rounds of 20,000, interleaved.
Their product, against the measured gap between a warm cell under runsc and under runc, says whether the gap is
the kernel's system calls (it is: gVisor's ptrace platform turns each into a round trip through its sentry).

Run: .venv/bin/python bench/kernel_syscalls.py [--cells 200] [--rounds 5]
     (needs strace, Docker, runsc registered and the sandbox image; writes bench/results/kernel_syscalls.json)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(ROOT), *(p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent)]

from jupyter_client.manager import KernelManager

from orchestrator.sandbox.image import default_tag

CELL = "x = 1 + 1\nprint(x)"
IMAGE_KERNEL = ["--IPKernelApp.kernel_class=toolshed_kernel.ToolshedKernel",
                "--IPKernelApp.outstream_class=toolshed_kernel.ToolshedOutStream"]
PRICE = ("import json, os, time\nout = []\nfor _ in range({rounds}):\n    t = time.perf_counter()\n"
         "    for _ in range(20000):\n        os.getpid()\n    out.append((time.perf_counter() - t) / 20000 * 1e6)\n"
         "print(json.dumps(out))")


def syscalls_per_cell(cells: int, kernel_args: list[str]) -> dict:
    """The kernel's system calls during `cells` trivial cells, by name, per cell."""
    env = os.environ | {"PYTHONPATH": str(ROOT / "sandbox_image")}
    manager = KernelManager(transport="ipc")
    manager.start_kernel(extra_arguments=["--HistoryManager.enabled=False", *kernel_args], env=env)
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(60)
        for _ in range(20):  # warm: first-cell imports are not what a warm cell costs
            client.execute_interactive(CELL, output_hook=lambda _: None)
        with tempfile.NamedTemporaryFile("r", suffix=".strace") as report:
            pid = manager.provisioner.process.pid  # type: ignore[union-attr]
            tracer = subprocess.Popen(["strace", "-f", "-c", "-o", report.name, "-p", str(pid)],
                                      stderr=subprocess.DEVNULL)
            time.sleep(1.0)  # strace attaches to every thread
            for _ in range(cells):
                client.execute_interactive(CELL, output_hook=lambda _: None)
            tracer.terminate()
            tracer.wait()
            counts = _strace_counts(report.read())
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    total = sum(counts.values())
    return {"per_cell": round(total / cells, 1),
            "by_name_per_cell": {name: round(n / cells, 1) for name, n in sorted(counts.items(), key=lambda kv: -kv[1])
                                 if n >= cells}}


def _strace_counts(report: str) -> dict[str, int]:
    """`strace -c`'s table: calls by system call name."""
    counts = {}
    for line in report.splitlines():
        fields = line.split()
        if len(fields) >= 5 and fields[0][0].isdigit() and fields[-1] != "total":
            counts[fields[-1]] = int(fields[3])
    return counts


def syscall_price(runtime: str, rounds: int) -> list[float]:
    """Microseconds per getpid inside a sandbox-image container under `runtime`, one sample per round."""
    done = subprocess.run(["docker", "run", "--rm", f"--runtime={runtime}", "--network=none", "--read-only",
                           "--user=1000:1000", "--cap-drop=ALL", "--entrypoint=python3", default_tag(), "-c",
                           PRICE.format(rounds=rounds)], capture_output=True, text=True, check=True, timeout=300)
    return [round(v, 3) for v in json.loads(done.stdout.strip().splitlines()[-1])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    counts = {"image_kernel": syscalls_per_cell(args.cells, IMAGE_KERNEL), "stock_ipykernel": syscalls_per_cell(
        args.cells, [])}
    prices: dict[str, list[float]] = {"runc": [], "runsc": []}
    for _ in range(2):  # interleaved, so a busy moment of the machine does not land on one runtime only
        for runtime, samples in prices.items():
            samples.extend(syscall_price(runtime, args.rounds))
    price = {runtime: statistics.median(samples) for runtime, samples in prices.items()}
    per_cell = counts["image_kernel"]["per_cell"]
    summary = {
        "syscalls_per_cell": {name: count["per_cell"] for name, count in counts.items()},
        "getpid_us_p50": price,
        # What the image kernel's system calls cost per cell under each runtime, from the two measurements.
        "kernel_syscall_ms_per_cell": {runtime: round(per_cell * us / 1000, 2) for runtime, us in price.items()},
    }
    out = {"machine": {"cpus": os.cpu_count(), "kvm_usable": _kvm_usable()}, "cells": args.cells,
           "summary": summary, "counts": counts, "raw_getpid_us": prices}
    results = ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "kernel_syscalls.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


def _kvm_usable() -> bool:
    """Whether gVisor's KVM platform could run here: the CPU exposes hardware virtualisation and /dev/kvm exists."""
    flags = Path("/proc/cpuinfo").read_text().split()
    return Path("/dev/kvm").exists() and ("vmx" in flags or "svm" in flags)


if __name__ == "__main__":
    main()
