"""Where the time of a cold sandbox start goes (issue 34), alone and in a burst, under one OCI runtime: the workspace
(mkfs + loop mount), Docker's create and start, the kernel coming up, the seal, the first imports; with the CPU
seconds each part of the machine spent per start and how late the event loop ran meanwhile.

The real engine (SandboxManager, DockerRuntime, WorkspaceStore) runs in this process with an empty pool; only the
clock is added: a WorkspaceStore subclass and a proxy of docker-py's API client note when each step starts and ends.

Run: .venv/bin/python bench/speed_breakdown.py [--runtime runsc|runc] [--alone 5] [--burst 50]
     (needs root, Docker and the sandbox image; writes bench/results/speed_breakdown_<runtime>.json)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(ROOT), *(p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent)]

from orchestrator.sandbox.hosts import Hosts
from orchestrator.sandbox.image import default_tag
from orchestrator.sandbox.local_host import LocalHost
from orchestrator.sandbox.manager import SandboxManager
from orchestrator.sandbox.models import SandboxSpec
from orchestrator.sandbox.policy import SandboxPolicy
from orchestrator.sandbox.runtime import DockerRuntime
from orchestrator.sandbox.workspace import Workspace, WorkspaceStore

Spans = dict[str, dict[str, tuple[float, float]]]  # sandbox id -> step -> (start, end), monotonic seconds
_DOCKER_CPUACCT = Path("/sys/fs/cgroup/cpuacct/docker/cpuacct.usage")  # cgroup v1, as on this machine


class TimedWorkspaces(WorkspaceStore):
    """The engine's WorkspaceStore, noting when each sandbox's create and seal ran."""

    def __init__(self, spans: Spans, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.spans = spans

    def create(self, sandbox_id: str, connection_info: dict[str, Any]) -> Workspace:
        start = time.monotonic()
        try:
            return super().create(sandbox_id, connection_info)
        finally:
            self.spans.setdefault(sandbox_id, {})["workspace"] = (start, time.monotonic())

    def seal(self, sandbox_id: str, connection_info: dict[str, Any]) -> None:
        start = time.monotonic()
        try:
            super().seal(sandbox_id, connection_info)
        finally:
            self.spans.setdefault(sandbox_id, {})["seal"] = (start, time.monotonic())


class TimedApi:
    """docker-py's low-level client, noting when each container's create and start calls ran."""

    def __init__(self, api: Any, spans: Spans) -> None:
        self._api, self._spans = api, spans
        self._ids: dict[str, str] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._api, name)

    def create_container(self, *args: Any, **kwargs: Any) -> Any:
        start = time.monotonic()
        created = self._api.create_container(*args, **kwargs)
        sandbox_id = str(kwargs.get("name", "")).removeprefix("toolshed-")
        self._ids[created["Id"]] = sandbox_id
        self._spans.setdefault(sandbox_id, {})["docker_create"] = (start, time.monotonic())
        return created

    def start(self, container: str, *args: Any, **kwargs: Any) -> Any:
        start = time.monotonic()
        try:
            return self._api.start(container, *args, **kwargs)
        finally:
            self._spans.setdefault(self._ids.get(container, container), {})["docker_start"] = (start, time.monotonic())


def cpu_now() -> dict[str, float]:
    """CPU seconds so far: the whole machine (busy), the containers (Docker's cgroup), this process and its
    children (mkfs, mount), and dockerd + containerd."""
    ticks = os.sysconf("SC_CLK_TCK")
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    daemons = 0.0
    for name in ("dockerd", "containerd"):
        for pid in subprocess.run(["pgrep", "-x", name], check=False, capture_output=True, text=True).stdout.split():
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            daemons += (int(stat[11]) + int(stat[12])) / ticks
    own = os.times()
    return {"machine": sum(int(v) for i, v in enumerate(fields[:8]) if i not in (3, 4)) / ticks,
            "containers": int(_DOCKER_CPUACCT.read_text()) / 1e9 if _DOCKER_CPUACCT.exists() else float("nan"),
            "engine_process": own.user + own.system, "mkfs_mount_children": own.children_user + own.children_system,
            "dockerd_containerd": daemons}


async def loop_lag(stop: asyncio.Event, lags: list[float]) -> None:
    """How late a 10 ms timer fires while the starts run: the event loop's own delay."""
    while not stop.is_set():
        start = time.monotonic()
        await asyncio.sleep(0.01)
        lags.append(time.monotonic() - start - 0.01)


async def starts(manager: SandboxManager, spans: Spans, count: int) -> dict[str, Any]:
    """`count` cold sandbox starts at once; once all are up, a first `import numpy, pandas` cell in each at once
    (what a pooled sandbox's preload saves). Per-step seconds, and CPU seconds per sandbox of each phase."""
    stop, lags = asyncio.Event(), list[float]()
    ticker = asyncio.create_task(loop_lag(stop, lags))

    async def timed(work: Any) -> tuple[Any, float]:
        start = time.monotonic()
        return await work, time.monotonic() - start

    cpu, begun = [cpu_now()], time.monotonic()
    created = await asyncio.gather(*(timed(manager.create(SandboxSpec(name="speed-breakdown"))) for _ in range(count)))
    wall = time.monotonic() - begun
    cpu.append(cpu_now())
    imported = await asyncio.gather(*(timed(manager.execute(sandbox.id, "import numpy, pandas", timeout=300))
                                      for sandbox, _ in created))
    cpu.append(cpu_now())
    stop.set()
    await ticker
    assert all(execution.status == "completed" for execution, _ in imported), imported
    steps: dict[str, list[float]] = {"create_total": [s for _, s in created],
                                     "first_import_numpy_pandas": [s for _, s in imported]}
    for sandbox, _ in created:
        span = spans[sandbox.id]
        for name, (start, end) in span.items():
            steps.setdefault(name, []).append(end - start)
        # From Docker's start returning to the seal: the kernel process coming up inside the sandbox.
        steps.setdefault("kernel_up", []).append(span["seal"][0] - span["docker_start"][1])
        await manager.delete(sandbox.id)
    per_start = lambda a, b: {name: round((b[name] - a[name]) / count, 3) for name in a}  # noqa: E731
    return {"count": count, "start_wall_s": round(wall, 2), "steps_s": {n: summary(v) for n, v in steps.items()},
            "cpu_s_per_start": per_start(cpu[0], cpu[1]), "cpu_s_per_first_import": per_start(cpu[1], cpu[2]),
            "loop_lag_ms": summary([lag * 1000 for lag in lags] or [0.0])}


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    pick = lambda q: round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)  # noqa: E731
    return {"p50": pick(0.5), "p90": pick(0.9), "max": round(ordered[-1], 3),
            "mean": round(statistics.fmean(ordered), 3)}


async def measure(runtime_name: str, alone: int, burst: int) -> dict[str, Any]:
    namespace = f"speedbd-{secrets.token_hex(3)}"
    root = Path(tempfile.mkdtemp(prefix="toolshed-speedbd-"))
    spans: Spans = {}
    workspaces = TimedWorkspaces(spans, root / "sandboxes", Path("/run/toolshed") / namespace, uid=1000,
                                 quota_bytes=1 << 30)
    runtime = DockerRuntime.from_env(image=default_tag(), namespace=namespace, uid=1000).using(runtime_name)
    runtime._client.api = TimedApi(runtime._client.api, spans)  # the clock only; every call goes through
    policy = SandboxPolicy(pool_size=0, max_sandboxes=burst + 4, kernel_start_timeout=300, capacity_wait=300)
    manager = SandboxManager(Hosts([LocalHost(runtime, workspaces)]), policy)
    try:
        result: dict[str, Any] = {"runtime": runtime_name, "alone": []}
        for _ in range(alone):
            result["alone"].append(await starts(manager, spans, 1))
        result["alone_steps_p50_s"] = {name: statistics.median(run["steps_s"][name]["p50"] for run in result["alone"])
                                       for name in result["alone"][0]["steps_s"]} if alone else {}
        if burst:
            result["burst"] = await starts(manager, spans, burst)
        return result
    finally:
        await manager.close()
        ids = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=toolshed.namespace={namespace}"],
                             check=False, capture_output=True, text=True).stdout.split()
        if ids:
            subprocess.run(["docker", "rm", "-f", *ids], check=False, capture_output=True)
        workspaces.detach_all()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runtime", choices=("runsc", "runc"), default="runsc")
    parser.add_argument("--alone", type=int, default=5, help="starts one at a time, first")
    parser.add_argument("--burst", type=int, default=50, help="starts at once, after")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    result = asyncio.run(measure(args.runtime, args.alone, args.burst))
    result["machine"] = {"cpus": len(os.sched_getaffinity(0)), "when": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                      time.gmtime())}
    out = args.out or ROOT / "bench" / "results" / f"speed_breakdown_{args.runtime}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "alone"}, indent=1))


if __name__ == "__main__":
    main()
