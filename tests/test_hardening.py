"""Seven ways a hostile cell could hurt the server or its neighbours (issue: hardening), each reproduced here.

Every test sends only what a model could: code to execute, tool calls, requests to the public API. Each would
fail without its protection; the bounds they assert are stated beside them. The module runs once with sandboxes
under gVisor (runsc) and once under runc, each runtime with its own servers (issue 31).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from tests.conftest import Evidence, Server, logs, new_container, run, sdk_client
from tests.sandbox_runtimes import battery_fixtures, runtime_server

pytestmark = pytest.mark.docker
# This module's battery runs once under each runtime, with a server of its own per runtime.
sandbox_runtime, server, client = battery_fixtures("hardening-shared")

MIB = 1 << 20
# The hardening server keeps the default 1 GiB sandbox disk (tens of thousands of inodes) and a small export
# budget, so "over budget" is cheap to reach.
EXPORT_BUDGET = 48 * MIB


@pytest.fixture(scope="module")
def big_server(sandbox_runtime: str, docker_ready: None,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with runtime_server(sandbox_runtime, tmp_path_factory.mktemp(f"hardening-{sandbox_runtime}"),
                        TOOLSHED_SANDBOX_EXPORT_BUDGET=str(EXPORT_BUDGET),
                        TOOLSHED_POOL_SIZE="0") as srv:
        yield srv


@pytest.fixture(scope="module")
def big_client(big_server: Server) -> OpenAI:
    return sdk_client(big_server, timeout=300)


@pytest.fixture
def big_container(big_client: OpenAI) -> Iterator[str]:
    with new_container(big_client, "hardening") as container_id:
        yield container_id


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


class Peak:
    """Samples a number in a background thread and keeps the largest value seen."""

    def __init__(self, sample: callable, interval: float) -> None:  # type: ignore[valid-type]
        self.value = sample()
        self._sample, self._interval = sample, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.value = max(self.value, self._sample())
            except OSError:
                pass

    def __enter__(self) -> Peak:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


# ---- 1. server memory through iopub after a cell returns ---------------------------------------------------------

def test_printing_after_the_cell_returned_does_not_grow_server_memory(client: OpenAI, container: str,
                                                                      server: Server) -> None:
    assert server.process is not None
    pid = server.process.pid
    before = rss_bytes(pid)
    started = run(client, container, (
        "import sys, threading, time\n"
        "def flood():\n"
        "    chunk = 'x' * (8 << 20)\n"
        "    end = time.time() + 15\n"
        "    while time.time() < end:\n"
        "        sys.stdout.write(chunk); sys.stdout.flush(); time.sleep(0.05)\n"
        "threading.Thread(target=flood, daemon=True).start()\n"
        "print('started')"))
    assert started["status"] == "completed"
    with Peak(lambda: rss_bytes(pid), 0.2) as peak:
        time.sleep(16)
    # Bound: 8 queued messages of 8 MiB plus working memory; unbounded, 15 s of this queued ~2 GB here.
    assert peak.value - before < 256 * MIB, f"server RSS grew by {(peak.value - before) / MIB:.0f} MiB"
    assert logs(run(client, container, "print('still fine')")) == "still fine\n"


# ---- 2. file descriptors through a wide tree ---------------------------------------------------------------------

@pytest.mark.attack("resources: a wide tree against the server's file descriptors")
def test_a_wide_tree_does_not_exhaust_server_fds(big_client: OpenAI, big_container: str, big_server: Server,
                                                 evidence: Evidence) -> None:
    assert big_server.process is not None
    pid = big_server.process.pid
    neighbour = big_client.containers.create(name="neighbour").id
    try:
        before = open_fds(pid)
        failures: list[str] = []

        def neighbour_calls() -> None:
            for _ in range(20):
                try:
                    assert logs(run(big_client, neighbour, "print(1)")) == "1\n"
                except Exception as exc:  # noqa: BLE001 - every failure is recorded and asserted on
                    failures.append(repr(exc))

        with Peak(lambda: open_fds(pid), 0.005) as peak:
            calls = threading.Thread(target=neighbour_calls)
            calls.start()
            execution = run(big_client, big_container,
                            "import os\nfor i in range(30000):\n    os.mkdir(f'/mnt/data/d{i}')\nprint('made')")
            run(big_client, big_container, "print('again')")  # a later cell scans the same tree
            calls.join()
        assert logs(execution) == "made\n"
        # Bound: one fd per folder level of the walk (32 levels at most), not one per pending folder.
        assert peak.value - before < 100, f"server fds went from {before} to {peak.value}"
        assert failures == []
        evidence(f"server fds grew by {peak.value - before}")
    finally:
        big_client.containers.delete(neighbour)


# ---- 3. host disk through exports --------------------------------------------------------------------------------

def blob_bytes(server: Server) -> int:
    return sum(p.stat().st_size for p in (server.data_dir / "files").iterdir() if p.is_file())


@pytest.mark.local_state
def test_exports_have_a_budget_and_identical_content_is_stored_once(big_client: OpenAI, big_container: str,
                                                                     big_server: Server) -> None:
    before = blob_bytes(big_server)
    first = run(big_client, big_container, "import os\nopen('/mnt/data/big.bin', 'wb').write(os.urandom(20 << 20))")
    [exported] = first["files"]
    assert exported["file_id"] is not None
    # Same bytes again (only the mtime changes): the export already stored is handed back.
    again = run(big_client, big_container, "import os; os.utime('/mnt/data/big.bin')")
    assert [f["file_id"] for f in again["files"]] == [exported["file_id"]]
    change = "with open('/mnt/data/big.bin', 'r+b') as f:\n    f.write(bytes([{n}]))"
    second = run(big_client, big_container, change.format(n=2))  # one byte changed: a second 20 MiB copy
    assert second["files"][0]["file_id"] not in (None, exported["file_id"])
    third = run(big_client, big_container, change.format(n=3))  # 60 MiB would be over the 48 MiB budget
    [refused] = third["files"]
    assert refused["file_id"] is None
    assert "export budget" in refused["error"] and "container file" in refused["error"]
    assert blob_bytes(big_server) - before <= EXPORT_BUDGET
    # Deleting an export gives its bytes back to the budget.
    big_client.files.delete(exported["file_id"])
    fourth = run(big_client, big_container, change.format(n=4))
    assert fourth["files"][0]["file_id"] is not None


def test_displayed_images_count_against_the_budget_and_are_capped_per_cell(client: OpenAI, container: str) -> None:
    execution = run(client, container, (
        "from IPython.display import Image, display\nimport base64\n"
        "png = base64.b64decode('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9"
        "awAAAABJRU5ErkJggg==')\n"
        "for _ in range(150):\n    display(Image(data=png, format='png'))\n"))
    images = [o for o in execution["outputs"] if o["type"] == "image"]
    assert len(images) == 100
    assert "[50 more images were displayed but not kept" in logs(execution)


# ---- 4. the sandbox-writable run dir -----------------------------------------------------------------------------

@pytest.mark.attack("filesystem: the kernel's connection files")
def test_the_sandbox_cannot_plant_entries_in_its_run_dir(client: OpenAI, container: str, evidence: Evidence) -> None:
    attempt = run(client, container, (
        "import os\n"
        "try:\n    os.mkdir('/run/toolshed/kernel-evil'); print('planted')\n"
        "except OSError as e:\n    print(type(e).__name__)\n"
        "try:\n    os.rename('/run/toolshed/kernel.json', '/run/toolshed/moved'); print('renamed')\n"
        "except OSError as e:\n    print(type(e).__name__)\n"))
    assert logs(attempt) == "PermissionError\nPermissionError\n"
    client.post(f"/containers/{container}/restart", body={}, cast_to=object)
    assert logs(run(client, container, "print('restarted')")) == "restarted\n"
    evidence("mkdir and rename in /run/toolshed: PermissionError")


@pytest.mark.attack("filesystem: kernel sockets swapped for links")
def test_a_socket_swapped_for_a_link_is_never_connected_to(docker_ready: None, tmp_path: Path, sandbox_runtime: str,
                                                           evidence: Evidence) -> None:
    """As a sandbox of a version without the sealed run dir could: its kernel sockets replaced by links to a
    root-only host socket. After a server restart the server must not follow them."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    target = tmp_path / "host.sock"
    listener.bind(str(target))
    os.chmod(target, 0o600)
    listener.listen(200)
    listener.settimeout(0.2)
    srv = Server(tmp_path / "data", TOOLSHED_POOL_SIZE="0", TOOLSHED_SANDBOX_RUNTIME=sandbox_runtime)
    srv.start()
    try:
        client = OpenAI(base_url=f"{srv.base_url}/v1", api_key="unused", max_retries=0, timeout=120)
        container = client.containers.create(name="swap").id
        assert logs(run(client, container, "x = 1; print(x)")) == "1\n"
        srv.stop()
        # A stopped server detaches every sandbox disk from the host (the running container keeps its mount);
        # mounted again as the engine mounts it, its run dir shows the kernel's sockets to swap.
        workspace = srv.data_dir / "sandboxes" / container
        subprocess.run(["mount", "-o", "loop,nosuid,nodev", str(workspace / "disk.img"), str(workspace / "disk")],
                       check=True)
        run_dir = Path(f"/run/toolshed/{srv.namespace}/{container}").resolve()
        assert len(list(run_dir.glob("kernel-*"))) == 5
        for sock in run_dir.glob("kernel-*"):
            sock.unlink()
            sock.symlink_to(target)
        srv.start()
        execution = run(client, container, "print('fresh kernel')")
        accepted = 0
        while True:
            try:
                listener.accept()[0].close()
                accepted += 1
            except TimeoutError:
                break
        assert accepted == 0
        assert logs(execution).endswith("fresh kernel\n")
        assert "restarted" in logs(execution)  # the user is told the kernel's state was lost
        evidence(f"{accepted} connections reached the host socket; a fresh kernel started")
    finally:
        srv.stop()
        srv.remove_containers()
        listener.close()


# ---- 5. one sandbox seeing the others ----------------------------------------------------------------------------

@pytest.mark.attack("filesystem: other sandboxes and host paths")
def test_a_sandbox_sees_no_other_sandbox_and_no_host_path(client: OpenAI, container: str, server: Server,
                                                          evidence: Evidence) -> None:
    seen = json.loads(logs(run(client, container, (
        "import glob, json, os\n"
        "def entries(p):\n    return os.listdir(p) if os.path.isdir(p) else []  # gVisor has no such folders\n"
        "def read(p):\n    return open(p).read() if os.path.exists(p) else ''\n"
        "listed = {p: entries(p) for p in ('/sys/block', '/sys/class/block', '/sys/devices/virtual/block')}\n"
        "backing = [open(p).read() for p in glob.glob('/sys/devices/virtual/block/*/loop/backing_file')]\n"
        "print(json.dumps({'listed': listed, 'backing': backing, 'diskstats': read('/proc/diskstats'),\n"
        "                  'mountinfo': open('/proc/self/mountinfo').read()}))"))))
    assert seen["listed"] == {"/sys/block": [], "/sys/class/block": [], "/sys/devices/virtual/block": []}
    assert seen["backing"] == [] and seen["diskstats"] == ""
    assert "cntr_" not in seen["mountinfo"]
    assert str(server.data_dir) not in seen["mountinfo"] and "/run/toolshed/" not in seen["mountinfo"]
    evidence("no block devices, loop backing files, diskstats or host paths visible")


# ---- 6. many files in one cell -----------------------------------------------------------------------------------

@pytest.mark.attack("resources: inode flood (50,000 files)")
def test_fifty_thousand_files_are_bounded_in_registration_and_listing(big_client: OpenAI, big_container: str,
                                                                      big_server: Server, evidence: Evidence) -> None:
    execution = run(big_client, big_container, (
        "for i in range(50000):\n    open(f'/mnt/data/f{i:05}.txt', 'w').close()\nprint('written')"))
    assert logs(execution) == "written\n"
    assert len(execution["files"]) == 100  # listed (and exported) per cell; the rest are a count
    assert execution["files_omitted"] == 10_000 - 100  # the scan visits at most 10,000 entries
    later = run(big_client, big_container, "print('later')")
    assert later["files"] == [] and later["files_omitted"] == 0  # nothing is registered twice
    assert httpx.get(f"{big_server.base_url}/health").json()["status"] == "ok"
    evidence(f"{len(execution['files'])} listed, {execution['files_omitted']} counted; server healthy")


# ---- 7. model-controlled input -----------------------------------------------------------------------------------

def tool_call(server: Server, arguments: str, **body: object) -> httpx.Response:
    return httpx.post(f"{server.base_url}/v1/tool_calls", timeout=60, json={
        "thread_id": "bad-input", "tool_call": {"id": "call_bad", "type": "function", "function": {
            "name": "code_interpreter", "arguments": arguments}}, **body})


def test_deeply_nested_arguments_are_a_400(server: Server) -> None:
    response = tool_call(server, "[" * 50_000 + "]" * 50_000)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_arguments"
    assert "nest too deeply" in response.json()["error"]["message"]


def test_a_lone_surrogate_in_code_is_a_400(server: Server, container: str) -> None:
    raw = '{"code": "print(\'\\ud800\')"}'
    direct = httpx.post(f"{server.base_url}/v1/containers/{container}/execute", content=raw,
                        headers={"content-type": "application/json"}, timeout=60)
    assert direct.status_code == 400
    assert "lone surrogate" in direct.json()["error"]["message"]
    via_tool = tool_call(server, '{"code": "print(\'\\ud800\')"}')
    assert via_tool.status_code == 400
    assert "lone surrogate" in via_tool.json()["error"]["message"]


def test_json_bodies_are_capped(server: Server, container: str) -> None:
    big = json.dumps({"code": "#" * (5 * MIB)})
    declared = httpx.post(f"{server.base_url}/v1/containers/{container}/execute", content=big,
                          headers={"content-type": "application/json"}, timeout=60)
    assert declared.status_code == 413
    assert declared.json()["error"]["code"] == "request_too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        for start in range(0, len(big), MIB):
            yield big[start:start + MIB].encode()

    chunked = httpx.post(f"{server.base_url}/v1/containers/{container}/execute", content=chunks(),
                         headers={"content-type": "application/json"}, timeout=60)
    assert chunked.status_code == 413
    assert chunked.json()["error"]["code"] == "request_too_large"
