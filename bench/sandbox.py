"""Sandbox benchmark: prints JSON, keeps the raw samples. Everything is measured in one run, against a baseline from
the same run. Protocol: untimed warm-ups first, then >= 100 timed runs per figure, reported as p50/p90/p99 with a
failure count (a failure is any non-200 answer or an execution that did not complete).
The round trip and the 50 threads start once the pool is full and the server idle (the phase before them
leaves containers to remove and a pool to refill).

- new thread to first result (POST /v1/tool_calls with an unseen thread_id) with a warm pool, and with an empty
  pool (a second server with TOOLSHED_POOL_SIZE=0);
- trivial execution round trip over HTTP against the bare-kernel baseline: the same image's kernel driven directly
  with jupyter_client; HTTP from a lean client (http.client) and from httpx; all three are interleaved run by
  run so machine noise hits them alike;
- 50 threads at once, each running 20 trivial executions back to back, over HTTP, with the CPU seconds per cell
  of the server, the sandboxes (their cgroup), this load client and the whole machine;
- idle memory per sandbox: cold-started, pooled (numpy and pandas preloaded, and numpy alone, each with the time
  of a first `import pandas` there), and across the 50 threads;
- rehydration after expiry: 100 containers expire (files kept), then each runs a cell that reads its file back;
- artifact registration: the after-cell scan of /mnt/data when nothing changed (with 0 and 500 files present),
  and export throughput for a large new file against a plain file copy of the same bytes in the same run;
- runtimes (issue 31): the same figures with sandboxes under gVisor (runsc) and under runc, one server each, in
  turn: sandbox start cold and from the warm pool, a trivial cell, a first numpy/pandas cell in a fresh sandbox
  and a pandas cell in a warm one, a cell writing 100 files to /mnt/data, and idle memory per sandbox; with the
  runsc/runc ratio of each p50. `--only runtimes` writes bench/results/sandbox_runtimes.json.

Run: .venv/bin/python bench/sandbox.py [--runs 100] [--only PHASE ...] [--out FILE]   (needs Docker + image)
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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from http.client import HTTPConnection
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, and bench/retrieval.py would shadow the package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import aiohttp
import httpx
from jupyter_client.blocking import BlockingKernelClient

from orchestrator.db import Database
from orchestrator.localserver import Server
from orchestrator.sandbox.image import default_tag
from orchestrator.sandbox.kernel import new_connection_info
from orchestrator.sandbox.local_host import LocalFiles
from orchestrator.sandbox.workspace import WorkspaceStore
from orchestrator.services.container_files import ContainerFiles, ContainerFileStore, ScanLimits
from orchestrator.services.exports import ExportLimits, Exports
from orchestrator.services.projects import Owners
from orchestrator.services.storage import FileStore

WARM_UPS = 5
POOL_SIZE = 2
RESULTS = Path(__file__).resolve().parent / "results" / "sandbox.json"
RUNTIME_RESULTS = RESULTS.with_name("sandbox_runtimes.json")
NUMPY_PANDAS = "import numpy, pandas\npandas.DataFrame(numpy.arange(100_000).reshape(-1, 10)).describe()"
HUNDRED_FILES = "for i in range(100):\n    open(f'/mnt/data/f{i:03}.txt', 'w').write(str(i))"


class Samples:
    """Timed runs of one figure: seconds per successful run, plus how many failed and why."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self.failures = 0
        self.why: list[str] = []

    def fail(self, why: str) -> None:
        self.failures += 1
        self.why.append(why[:300])

    def time(self, fn: Callable[[], bool]) -> None:
        start = time.perf_counter()
        try:
            ok, why = fn(), "the answer was not the expected one"
        except (httpx.HTTPError, AssertionError, KeyError, TimeoutError) as exc:
            ok, why = False, repr(exc)
        if ok:
            self.seconds.append(time.perf_counter() - start)
        else:
            self.fail(why)

    def summary(self) -> dict:
        ms = sorted(s * 1000 for s in self.seconds)
        failed = {"failures": self.failures, **({"why": self.why[:5]} if self.why else {})}
        if not ms:
            return {"n": 0, **failed}
        pick = lambda q: ms[min(len(ms) - 1, int(q * len(ms)))]  # noqa: E731
        return {"n": len(ms), **failed, "p50_ms": round(pick(0.5), 2), "p90_ms": round(pick(0.9), 2),
                "p99_ms": round(pick(0.99), 2), "mean_ms": round(statistics.fmean(ms), 2)}

    @classmethod
    def repeat(cls, fn: Callable[[], bool], runs: int, warmup: int) -> Samples:
        samples = cls()
        for _ in range(warmup):
            fn()
        for _ in range(runs):
            samples.time(fn)
        return samples

    def raw(self) -> list[float]:
        return [round(s * 1000, 3) for s in self.seconds]


def metric(server: Server, name: str) -> float:
    text = httpx.get(f"{server.base_url}/metrics").text
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))


def settle(server: Server, pool_size: int) -> None:
    """Waits until the pool is full and the server idle (refills and removals after the last phase done), so that a
    phase measures its own calls, not the clean-up of the one before it."""
    ticks = os.sysconf("SC_CLK_TCK")
    assert server.process is not None

    def cpu_seconds() -> float:
        fields = Path(f"/proc/{server.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / ticks

    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if metric(server, "toolshed_pool_ready") >= pool_size:
            before = cpu_seconds()
            time.sleep(0.5)
            if cpu_seconds() - before < 0.02:
                return
        else:
            time.sleep(0.1)
    raise TimeoutError(f"the server did not settle within 300 s (see {server.log})")


def code_call(thread_id: str, code: str) -> dict:
    """The body of a POST /v1/tool_calls running `code` on the thread's sandbox."""
    return {"thread_id": thread_id, "tool_call": {"id": "call_bench", "type": "function", "function": {
        "name": "code_interpreter", "arguments": json.dumps({"code": code})}}}


def tool_call(http: httpx.Client, thread_id: str, code: str) -> dict:
    response = http.post("/tool_calls", json=code_call(thread_id, code))
    response.raise_for_status()
    return response.json()


def new_thread_first_result(server: Server, runs: int, wait_for_pool: bool) -> Samples:
    """A never-seen thread's first code call, timed from request to answer; its sandbox is deleted (untimed)."""
    http = httpx.Client(base_url=f"{server.base_url}/v1", timeout=120)
    samples = Samples()
    for i in range(runs + WARM_UPS):
        while wait_for_pool and metric(server, "toolshed_pool_ready") < 1:
            time.sleep(0.05)  # untimed: the refill an idle server would have had time for
        answers: list[dict] = []

        def first(answers: list[dict] = answers) -> bool:
            answers.append(tool_call(http, f"bench-{secrets.token_hex(6)}", "print(1)"))
            return answers[-1]["output"] == "1\n"

        if i < WARM_UPS:
            first()
        else:
            samples.time(first)
        for answer in answers:
            http.delete(f"/containers/{answer['container_id']}")
    return samples


def idle_memory_mib(container_ids: list[str]) -> list[float]:
    """cgroup memory of each container less page cache, as `docker stats` reports it."""
    wanted = {f"toolshed-{cid}" for cid in container_ids}
    out = subprocess.run(["docker", "stats", "--no-stream", "--format", "{{json .}}"], capture_output=True,
                         text=True, check=True).stdout
    sizes = []
    for line in out.splitlines():
        stats = json.loads(line)
        if stats["Name"] not in wanted:
            continue
        usage = stats["MemUsage"].split("/")[0].strip()
        value, unit = float(usage[:-3]), usage[-3:]
        sizes.append(round(value * {"KiB": 1 / 1024, "MiB": 1, "GiB": 1024}[unit], 1))
    return sizes


def memory_summary(sizes: list[float]) -> dict:
    return {"n": len(sizes), "p50_mib": statistics.median(sizes), "max_mib": max(sizes)}


class BareKernel:
    """The floor: a container of the same image, its kernel driven directly with jupyter_client, no HTTP."""

    def __init__(self) -> None:
        self.run_dir = Path(tempfile.mkdtemp(prefix="tsb", dir="/tmp"))
        self.name = f"toolshed-bench-{secrets.token_hex(4)}"
        self.client = BlockingKernelClient()

    def __enter__(self) -> BareKernel:
        info = new_connection_info("/run/toolshed/kernel")
        (self.run_dir / "kernel.json").write_text(json.dumps(info))
        os.chown(self.run_dir, 1000, 1000)
        os.chown(self.run_dir / "kernel.json", 1000, 1000)
        subprocess.run(["docker", "run", "-d", "--rm", "--name", self.name, "--network", "none", "--init",
                        "-u", "1000:1000", "-v", f"{self.run_dir}:/run/toolshed", "--read-only", "--tmpfs", "/tmp",
                        default_tag()], check=True, capture_output=True)
        self.client.load_connection_info(dict(info, ip=str(self.run_dir / "kernel")))
        self.client.start_channels()
        # Ready means kernel_info answered *and* iopub delivered (a SUB socket misses what precedes its join).
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                self.client.kernel_info(reply=True, timeout=1)
                self.client.get_iopub_msg(timeout=1)
                return self
            except (TimeoutError, queue.Empty):
                continue
        raise TimeoutError("the bare kernel did not start")

    def trivial(self) -> bool:
        reply = self.client.execute_interactive("1 + 1", timeout=30, output_hook=lambda msg: None)
        return reply["content"]["status"] == "ok"

    def __exit__(self, *exc: object) -> None:
        self.client.stop_channels()
        subprocess.run(["docker", "rm", "-f", self.name], check=False, capture_output=True)
        shutil.rmtree(self.run_dir, ignore_errors=True)


def round_trips(server: Server, runs: int) -> dict[str, Samples]:
    """The same trivial cell over HTTP and on the bare kernel, in turn, after untimed warm-ups of each. HTTP is
    sent twice: from the standard library's http.client (a client that costs little, so the figure is the
    server's), and from httpx (what the `openai` SDK uses; its own CPU per call shows in that figure)."""
    http = httpx.Client(base_url=f"{server.base_url}/v1", timeout=120)
    cid = http.post("/containers", json={"name": "bench-rt"}).json()["id"]
    lean = HTTPConnection("127.0.0.1", server.port, timeout=120)
    body = json.dumps({"code": "1 + 1"})

    def over_httpx() -> bool:
        return http.post(f"/containers/{cid}/execute", json={"code": "1 + 1"}).json()["status"] == "completed"

    def over_http() -> bool:
        lean.request("POST", f"/v1/containers/{cid}/execute", body, {"Content-Type": "application/json"})
        answer = lean.getresponse()
        return answer.status == 200 and json.loads(answer.read())["status"] == "completed"

    result = {"http": Samples(), "httpx": Samples(), "bare": Samples()}
    with BareKernel() as bare:
        calls = {"http": over_http, "httpx": over_httpx, "bare": bare.trivial}
        for _ in range(20):
            for call in calls.values():
                call()
        for _ in range(runs):
            for name, call in calls.items():
                result[name].time(call)
    lean.close()
    http.delete(f"/containers/{cid}")
    return result


class CpuMeter:
    """CPU seconds spent by the server process, by every sandbox container (the Docker cgroup's cpuacct), by this
    load client, and by the whole machine, between start() and stop()."""

    _DOCKER_CPUACCT = Path("/sys/fs/cgroup/cpuacct/docker/cpuacct.usage")  # cgroup v1, as on this machine

    def __init__(self, server_pid: int) -> None:
        self.pid = server_pid
        self.ticks = os.sysconf("SC_CLK_TCK")

    def read(self) -> dict[str, float]:
        stat = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        machine = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        busy = sum(int(v) for i, v in enumerate(machine[:8]) if i not in (3, 4))  # all but idle and iowait
        kernels = int(self._DOCKER_CPUACCT.read_text()) / 1e9 if self._DOCKER_CPUACCT.exists() else float("nan")
        return {"server": (int(stat[11]) + int(stat[12])) / self.ticks, "sandboxes": kernels,
                "load_client": time.process_time(), "machine": busy / self.ticks}

    def start(self) -> None:
        self.started = self.read()

    def per_cell(self, cells: int, seconds: float) -> dict[str, float]:
        ended = self.read()
        spent = {name: ended[name] - self.started[name] for name in ended}
        result = {f"{name}_cpu_ms_per_cell": round(value * 1000 / cells, 2) for name, value in spent.items()}
        result["machine_busy_fraction"] = round(spent["machine"] / (seconds * (os.cpu_count() or 1)), 3)
        result["cells"], result["seconds"] = cells, round(seconds, 2)
        return result


async def concurrent_threads(server: Server, threads: int,
                             executions: int) -> tuple[Samples, Samples, list[str], dict[str, float]]:
    """`threads` new threads at once: their first calls (sandbox start under load), then `executions` trivial cells
    each, back to back, all threads in parallel, with the CPU each part of the machine spent on those cells."""
    first, steady = Samples(), Samples()
    # aiohttp, not httpx: this client shares the 2 cores with what it measures, and httpx's async client took
    # ~8 ms of CPU per call here (40% of the machine), aiohttp a fraction of that; the figure below reports it.
    connector = aiohttp.TCPConnector(limit=threads * 2)
    async with aiohttp.ClientSession(base_url=f"{server.base_url}/", connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=120)) as http:
        containers: set[str] = set()

        async def call(samples: Samples, thread_id: str) -> None:
            start = time.perf_counter()
            try:
                async with http.post("v1/tool_calls", json=code_call(thread_id, "print(1 + 1)")) as response:
                    answer = await response.json()
                ok = response.status == 200 and answer["output"] == "2\n"
                containers.add(answer["container_id"])
                why = f"{response.status}: {json.dumps(answer)}"
            except (TimeoutError, aiohttp.ClientError, KeyError, ValueError) as exc:
                ok, why = False, repr(exc)
            if ok:
                samples.seconds.append(time.perf_counter() - start)
            else:
                samples.fail(why)

        async def thread(thread_id: str) -> None:
            for _ in range(executions):
                await call(steady, thread_id)

        ids = [f"bench-many-{i}-{secrets.token_hex(4)}" for i in range(threads)]
        await asyncio.gather(*(call(first, tid) for tid in ids))
        assert server.process is not None
        meter = CpuMeter(server.process.pid)
        meter.start()
        started = time.perf_counter()
        await asyncio.gather(*(thread(tid) for tid in ids))
        cpu = meter.per_cell(threads * executions, time.perf_counter() - started)
    return first, steady, sorted(containers), cpu


def rehydration(server: Server, runs: int) -> tuple[Samples, list[float]]:
    """`runs` containers (1-minute expiry) each write a file; once all are reclaimed, each runs a cell reading its
    file back: the time of that cell is the rehydration. Returns it and the idle memory of the containers."""
    http = httpx.Client(base_url=f"{server.base_url}/v1", timeout=120)
    digests = {}
    for i in range(runs):
        cid = http.post("/containers", json={"name": f"rehydrate-{i}",
                                             "expires_after": {"anchor": "last_active_at", "minutes": 1}}).json()["id"]
        payload = secrets.token_hex(32)
        code = f"open('/mnt/data/keep.txt', 'w').write({payload!r})"
        assert http.post(f"/containers/{cid}/execute", json={"code": code}).json()["status"] == "completed"
        digests[cid] = payload
    memory = idle_memory_mib(list(digests))
    while metric(server, 'toolshed_sandboxes{status="expired"}') < runs:
        time.sleep(1)
    samples = Samples()
    for cid, payload in digests.items():
        def back(cid: str = cid, payload: str = payload) -> bool:
            answer = http.post(f"/containers/{cid}/execute",
                               json={"code": "print(open('/mnt/data/keep.txt').read())"}).json()
            return answer["status"] == "completed" and payload in answer["outputs"][-1]["logs"]

        samples.time(back)
    delete_all(server, list(digests))
    return samples, memory


def pooled_idle_memory(server: Server, count: int) -> tuple[list[float], Samples]:
    """Sandboxes taken from the pool (TOOLSHED_POOL_PRELOAD imported), after one cell and a pause; then the time
    of each one's first `import pandas` cell (free when pandas was preloaded)."""
    http = httpx.Client(base_url=f"{server.base_url}/v1", timeout=120)
    ids = []
    for _ in range(count):
        while metric(server, "toolshed_pool_ready") < 1:
            time.sleep(0.05)
        ids.append(http.post("/containers", json={"name": "bench-idle"}).json()["id"])
        http.post(f"/containers/{ids[-1]}/execute", json={"code": "1"})
    time.sleep(3)
    sizes = idle_memory_mib(ids)
    first_import = Samples()
    for cid in ids:
        first_import.time(lambda cid=cid: http.post(f"/containers/{cid}/execute", json={
            "code": "import pandas"}).json()["status"] == "completed")
    delete_all(server, ids)
    return sizes, first_import


def delete_all(server: Server, container_ids: list[str]) -> None:
    http = httpx.Client(base_url=f"{server.base_url}/v1", timeout=120)
    for cid in container_ids:
        http.delete(f"/containers/{cid}")


def bench_artifacts(runs: int, large_mb: int) -> dict:
    """The registration step alone, on a real loop-mounted sandbox disk, through the same library the server uses."""
    root = Path(tempfile.mkdtemp(prefix="toolshed-bench-artifacts-"))
    db = Database(root / "toolshed.db")
    files = FileStore(db, root)
    workspaces = WorkspaceStore(root / "sandboxes", Path(f"/run/toolshed/bench-{secrets.token_hex(3)}"),
                                uid=1000, quota_bytes=(2 * large_mb + 256) << 20)
    exports = Exports(db, files, Owners(db), ExportLimits(1 << 40, 0, 4 * large_mb << 20))
    collector = ContainerFiles(ContainerFileStore(db), files, lambda _: LocalFiles(workspaces), exports,
                               ScanLimits(max_listed=1000))
    sandbox_id = f"cntr_bench{secrets.token_hex(4)}"
    data_dir = workspaces.create(sandbox_id, {}).data_dir
    loop = asyncio.new_event_loop()
    collect = lambda: loop.run_until_complete(collector.collect(sandbox_id))  # noqa: E731
    scan = lambda: collect() is not None  # noqa: E731
    try:
        result: dict = {}
        result["scan_no_new_files_0_present"] = Samples.repeat(scan, runs, warmup=5).summary()
        for i in range(500):
            (data_dir / f"f{i:03}.csv").write_text("a,b\n1,2\n")
        collect()  # registers (and exports) the 500 files once
        result["scan_no_new_files_500_present"] = Samples.repeat(scan, runs, warmup=5).summary()

        payload = os.urandom(1 << 20) * large_mb
        (data_dir / "large.bin").write_bytes(payload)
        start = time.perf_counter()
        [artifact] = collect().artifacts
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


def create(http: httpx.Client, made: list[str], name: str) -> bool:
    made.append(http.post("/containers", json={"name": name}).json()["id"])
    return True


def execute(http: httpx.Client, container_id: str, code: str) -> bool:
    return http.post(f"/containers/{container_id}/execute", json={"code": code}).json()["status"] == "completed"


def runtime_figures(runtime: str, runs: int, starts: int) -> tuple[dict[str, Samples], list[float]]:
    """One runtime's figures, on two servers of its own: one with an empty pool (cold starts, first numpy/pandas
    cell) and one with a warm pool (pooled starts, then cells in one pooled sandbox)."""
    figures = {name: Samples() for name in ("start_cold", "first_cell_numpy_pandas_cold", "start_from_pool")}
    with runtime_server(runtime, POOL_SIZE="0") as cold:
        http = httpx.Client(base_url=f"{cold.base_url}/v1", timeout=300)
        for _ in range(starts):
            made: list[str] = []
            figures["start_cold"].time(partial(create, http, made, "bench-cold"))
            figures["first_cell_numpy_pandas_cold"].time(partial(execute, http, made[-1], NUMPY_PANDAS))
            delete_all(cold, made)
    with runtime_server(runtime, POOL_SIZE=str(POOL_SIZE)) as warm:
        http = httpx.Client(base_url=f"{warm.base_url}/v1", timeout=300)
        for _ in range(starts):
            settle(warm, POOL_SIZE)  # untimed: the refill an idle server would have had time for
            made = []
            figures["start_from_pool"].time(partial(create, http, made, "bench-warm"))
            delete_all(warm, made)
        settle(warm, POOL_SIZE)
        ids: list[str] = []
        create(http, ids, "bench-cells")
        for name, code, n in (("trivial_cell", "1 + 1", runs), ("numpy_pandas_cell_warm", NUMPY_PANDAS, runs),
                              ("cell_writing_100_files", HUNDRED_FILES, max(starts, runs // 5))):
            figures[name] = Samples.repeat(partial(execute, http, ids[0], code), n, warmup=3)
        for i in range(4):
            create(http, ids, f"bench-idle-{i}")
            execute(http, ids[-1], "1")
        time.sleep(3)
        memory = idle_memory_mib(ids)
        delete_all(warm, ids)
    return figures, memory


@contextmanager
def runtime_server(runtime: str, **env: str) -> Iterator[Server]:
    """A server whose sandboxes run under `runtime`; exits if that is not the runtime it ends up using."""
    server = Server(Path(tempfile.mkdtemp(prefix="toolshed-bench-")), TOOLSHED_SANDBOX_RUNTIME=runtime,
                    **{f"TOOLSHED_{k}": v for k, v in env.items()})
    server.start()
    try:
        engine = httpx.get(f"{server.base_url}/health").json()["engine"]
        if engine.get("runtime") != runtime:
            raise SystemExit(f"sandboxes do not run under {runtime}: {engine}")
        yield server
    finally:
        server.stop()
        server.remove_containers()


def compare_runtimes(runs: int, starts: int) -> dict:
    """runsc against runc, each figure's p50 ratio beside the two summaries."""
    result: dict = {}
    raw: dict = {}
    for runtime in ("runsc", "runc"):
        figures, memory = runtime_figures(runtime, runs, starts)
        result[runtime] = {name: samples.summary() for name, samples in figures.items()}
        result[runtime]["idle_memory"] = memory_summary(memory)
        raw[runtime] = {name: samples.raw() for name, samples in figures.items()} | {"idle_memory_mib": memory}
    result["runsc_over_runc_p50"] = {
        name: round(result["runsc"][name]["p50_ms"] / result["runc"][name]["p50_ms"], 2)
        for name in result["runc"] if "p50_ms" in result["runc"][name] and "p50_ms" in result["runsc"][name]}
    result["runsc_over_runc_p50"]["idle_memory"] = round(
        result["runsc"]["idle_memory"]["p50_mib"] / result["runc"]["idle_memory"]["p50_mib"], 2)
    result["raw_ms"] = raw
    return result


PHASES = ("first", "round_trip", "pooled_memory", "concurrent", "cold", "artifacts", "runtimes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100, help="timed runs per figure (>= 100 for the protocol)")
    parser.add_argument("--threads", type=int, default=50)
    parser.add_argument("--executions", type=int, default=20, help="per thread, in the concurrency figure")
    parser.add_argument("--large-mb", type=int, default=200)
    parser.add_argument("--starts", type=int, default=20, help="sandbox starts per runtime, in the runtimes figure")
    parser.add_argument("--only", nargs="+", choices=PHASES, default=PHASES,
                        help="run these phases alone (their figures are printed, not saved unless --out is given)")
    parser.add_argument("--out", type=Path,
                        help="where the raw samples are written (a full run: bench/results/sandbox.json)")
    args = parser.parse_args()
    phases = set(args.only)
    out = args.out or (RESULTS if phases == set(PHASES) else RUNTIME_RESULTS if phases == {"runtimes"} else None)
    figures: dict[str, Samples] = {}
    memory: dict[str, list[float]] = {}
    cpu_cost: dict[str, dict[str, float]] = {}

    if phases & {"first", "round_trip", "pooled_memory", "concurrent"}:
        warm = Server(Path(tempfile.mkdtemp(prefix="toolshed-bench-")), TOOLSHED_POOL_SIZE=str(POOL_SIZE))
        warm.start()
        try:
            if "first" in phases:
                figures["new_thread_first_result_warm_pool"] = new_thread_first_result(warm, args.runs, True)
            if "round_trip" in phases:
                settle(warm, POOL_SIZE)
                trips = round_trips(warm, max(args.runs, 300))
                figures["trivial_execute_http"] = trips["http"]
                figures["trivial_execute_httpx"] = trips["httpx"]
                figures["trivial_execute_bare_jupyter_client"] = trips["bare"]
            if "pooled_memory" in phases:
                memory["pooled_sandbox_idle"], figures["pooled_first_import_pandas"] = pooled_idle_memory(warm, 5)
                # The other side of TOOLSHED_POOL_PRELOAD's trade: numpy alone waits in the pool.
                lean = Server(Path(tempfile.mkdtemp(prefix="toolshed-bench-")), TOOLSHED_POOL_SIZE=str(POOL_SIZE),
                              TOOLSHED_POOL_PRELOAD='["numpy"]')
                lean.start()
                try:
                    memory["pooled_numpy_only_idle"], figures["pooled_numpy_only_first_import_pandas"] = (
                        pooled_idle_memory(lean, 5))
                finally:
                    lean.stop()
                    lean.remove_containers()
            if "concurrent" in phases:
                settle(warm, POOL_SIZE)
                first, steady, made, cpu = asyncio.run(concurrent_threads(warm, args.threads, args.executions))
                cpu_cost[f"concurrent_{args.threads}_threads_x{args.executions}_execute"] = cpu
                figures[f"concurrent_{args.threads}_threads_first_call"] = first
                figures[f"concurrent_{args.threads}_threads_x{args.executions}_execute"] = steady
                time.sleep(3)
                memory[f"concurrent_{args.threads}_threads_idle"] = idle_memory_mib(made)
                delete_all(warm, made)
        finally:
            warm.stop()
            warm.remove_containers()

    if "cold" in phases:
        cold = Server(Path(tempfile.mkdtemp(prefix="toolshed-bench-")), TOOLSHED_POOL_SIZE="0",
                      TOOLSHED_REAP_INTERVAL="2", TOOLSHED_MAX_SANDBOXES=str(args.runs + 20))
        cold.start()
        try:
            figures["new_thread_first_result_empty_pool"] = new_thread_first_result(cold, args.runs, False)
            figures["rehydration_after_expiry"], memory["cold_sandbox_idle"] = rehydration(cold, args.runs)
        finally:
            cold.stop()
            cold.remove_containers()

    summary: dict = {name: samples.summary() for name, samples in figures.items()}
    if "round_trip" in phases:
        bare_p50 = summary["trivial_execute_bare_jupyter_client"]["p50_ms"]
        summary["http_overhead_ratio_p50"] = round(summary["trivial_execute_http"]["p50_ms"] / bare_p50, 2)
        summary["httpx_overhead_ratio_p50"] = round(summary["trivial_execute_httpx"]["p50_ms"] / bare_p50, 2)
    summary["idle_memory"] = {name: memory_summary(sizes) for name, sizes in memory.items()}
    summary["cpu_cost"] = cpu_cost
    if "artifacts" in phases:
        summary["artifacts"] = bench_artifacts(args.runs, args.large_mb)
    if "runtimes" in phases:
        summary["runtimes"] = compare_runtimes(args.runs, args.starts)
    summary["machine"] = {"cpus": os.cpu_count(), "image": default_tag(),
                          "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"summary": summary, "raw_ms": {n: s.raw() for n, s in figures.items()},
                                   "idle_memory_mib": memory}, indent=1))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
