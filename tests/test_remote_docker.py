"""Sandboxes on a Docker engine that shares no path with the server (issue 33, groundwork): a second dockerd on
this machine, reached over mutual TLS; the kernel's channels over a Docker exec; /mnt/data through the archive
endpoints."""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import docker
import docker.errors
import pytest
import pytest_asyncio
import requests.exceptions
import zmq

from orchestrator.sandbox.archive_files import FileRefused, get_file, put_file
from orchestrator.sandbox.hardening import Limits
from orchestrator.sandbox.image import default_tag
from orchestrator.sandbox.kernel import KernelConnector, KernelSession, new_connection_info
from orchestrator.sandbox.kernel_channel import KernelChannel, new_sandbox_connection, open_channel
from orchestrator.sandbox.models import ImageOutput, TextOutput
from orchestrator.sandbox.remote_container import create_data_volume, start_sandbox
from orchestrator.sandbox.runtime import DockerRuntime
from tests.conftest import Evidence, skip_unless_required
from tests.second_dockerd import SecondDockerd, network_snapshot

pytestmark = pytest.mark.docker

UID = 1000
LIMITS = Limits(512 << 20, 1.0, 128, "16m")
MAX_FILE = 8 << 20


@pytest.fixture(scope="module")
def engine(docker_ready: None) -> Iterator[SecondDockerd]:
    """The second engine, with the sandbox image loaded through both APIs; stopped, and checked to have left
    nothing behind and changed nothing of the host's networking, after the module."""
    skip_unless_required(None if os.geteuid() == 0 and shutil.which("dockerd") else
                         "a second dockerd needs root and the dockerd binary")
    local = docker.from_env()
    before = network_snapshot(local)
    second = SecondDockerd()
    try:
        second.start()
        assert network_snapshot(local, second.bridge) == before, \
            "starting the second engine changed the host's networking"
        second.load_image(local, default_tag())
        yield second
    finally:
        second.stop()
    assert second.leftovers() == []
    assert network_snapshot(local) == before


@contextmanager
def remote_sandbox(engine: SecondDockerd, runtime: str) -> Iterator[tuple[str, KernelChannel]]:
    """A hardened sandbox on the second engine, and its kernel channel."""
    api = engine.client().api
    sandbox_id = f"rt{uuid.uuid4().hex[:10]}"
    labels = {"namespace": "remote-test"}
    volume = create_data_volume(api, sandbox_id, size_bytes=64 << 20, uid=UID, labels=labels)
    connection = new_sandbox_connection()
    container = start_sandbox(api, sandbox_id, image=default_tag(), uid=UID, limits=LIMITS, oci_runtime=runtime,
                              data_volume=volume, connection=connection, labels=labels)
    channel = None
    try:
        channel = open_channel(api, container, connection, context=zmq.Context.instance())
        yield container, channel
    finally:
        if channel is not None:
            channel.close()
        api.remove_container(container, force=True)
        api.remove_volume(volume, force=True)


@pytest.fixture(scope="module")
def sandbox(engine: SecondDockerd) -> Iterator[tuple[str, KernelChannel]]:
    with remote_sandbox(engine, "runsc") as made:
        yield made


@pytest_asyncio.fixture
async def session(sandbox: tuple[str, KernelChannel]) -> AsyncIterator[KernelSession]:
    connector = KernelConnector()
    sess = connector.connect(sandbox[1].connection_info)
    await sess.wait_ready(120)
    yield sess
    sess.close()
    connector.close()


async def _run(session: KernelSession, code: str):  # noqa: ANN202 - CellResult
    return await session.execute(code, 60, interrupt_grace=5, max_text_bytes=1 << 20)


async def test_cells_keep_state_return_plots_and_errors_over_the_exec_channel(session: KernelSession) -> None:
    assert (await _run(session, "x = 41")).outcome == "ok"
    assert (await _run(session, "print(x + 1)")).outputs == (TextOutput("stdout", "42\n"),)
    plot = await _run(session, "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.show()")
    assert plot.outcome == "ok"
    assert [o.mime_type for o in plot.outputs if isinstance(o, ImageOutput)] == ["image/png"]
    failed = await _run(session, "1 / 0")
    assert failed.outcome == "error"
    assert failed.error is not None and failed.error.name == "ZeroDivisionError"


async def test_a_file_goes_in_and_a_generated_file_comes_out_through_the_engine_api(
        engine: SecondDockerd, sandbox: tuple[str, KernelChannel], session: KernelSession,
        tmp_path: Path) -> None:
    api, container = engine.client().api, sandbox[0]
    put_file(api, container, "numbers.txt", io.BytesIO(b"1\n2\n3\n"), 6, uid=UID, max_bytes=MAX_FILE)
    made = await _run(session, "total = sum(int(n) for n in open('numbers.txt'))\n"
                               "open('/mnt/data/out.bin', 'wb').write(bytes([total]) * 3_000_000)")
    assert made.outcome == "ok"
    with (tmp_path / "out.bin").open("wb") as sink:
        assert get_file(api, container, "out.bin", sink, max_bytes=MAX_FILE) == 3_000_000
    assert (tmp_path / "out.bin").read_bytes() == bytes([6]) * 3_000_000


@pytest.mark.attack("hostile entries in /mnt/data taken out through the engine's archive endpoint")
async def test_links_fifos_huge_files_and_odd_names_are_refused_on_the_way_out(
        engine: SecondDockerd, sandbox: tuple[str, KernelChannel], session: KernelSession,
        evidence: Evidence) -> None:
    api, container = engine.client().api, sandbox[0]
    planted = await _run(session, "import os\nos.symlink('/etc/passwd', '/mnt/data/passwd')\n"
                                  "os.mkfifo('/mnt/data/pipe')\nos.mkdir('/mnt/data/folder')\n"
                                  f"open('/mnt/data/huge', 'wb').truncate({MAX_FILE + 1})")
    assert planted.outcome == "ok"
    refused = {}
    for name in ("passwd", "pipe", "folder", "huge", "../etc/passwd", "..", "a\nb", "x" * 300):
        with pytest.raises(FileRefused) as caught:
            get_file(api, container, name, io.BytesIO(), max_bytes=MAX_FILE)
        refused[name[:20]] = str(caught.value)
    evidence(repr(refused))


@pytest.mark.attack("a symlink planted where the server will put a file")
async def test_a_put_replaces_a_planted_symlink_instead_of_following_it(
        engine: SecondDockerd, sandbox: tuple[str, KernelChannel], session: KernelSession,
        evidence: Evidence) -> None:
    api, container = engine.client().api, sandbox[0]
    assert (await _run(session, "import os\nos.symlink('/tmp/escaped', '/mnt/data/upload.txt')")).outcome == "ok"
    put_file(api, container, "upload.txt", io.BytesIO(b"data"), 4, uid=UID, max_bytes=MAX_FILE)
    seen = await _run(session, "import os\nprint(os.path.islink('upload.txt'), open('upload.txt').read(), "
                               "os.path.exists('/tmp/escaped'))")
    assert seen.outputs == (TextOutput("stdout", "False data False\n"),)
    with pytest.raises(FileRefused):
        put_file(api, container, "../escape", io.BytesIO(b"x"), 1, uid=UID, max_bytes=MAX_FILE)
    evidence("upload.txt is a regular file after the put; /tmp/escaped was not created")


def test_the_sandbox_has_runtimes_protections_and_no_host_path(engine: SecondDockerd,
                                                              sandbox: tuple[str, KernelChannel]) -> None:
    attrs = engine.client().api.inspect_container(sandbox[0])
    host = attrs["HostConfig"]
    assert host["Binds"] is None
    assert [(m["Type"], m["Destination"]) for m in attrs["Mounts"]] == [("volume", "/mnt/data")]
    assert (host["NetworkMode"], host["ReadonlyRootfs"], host["CapDrop"], host["SecurityOpt"], host["Runtime"]) == \
        ("none", True, ["ALL"], ["no-new-privileges"], "runsc")


@pytest.mark.attack("a Docker API client without the TLS client certificate")
def test_the_engine_refuses_a_client_without_the_client_certificate(engine: SecondDockerd,
                                                                    evidence: Evidence) -> None:
    assert engine.client().ping()
    with pytest.raises((docker.errors.DockerException, requests.exceptions.RequestException)) as caught:
        engine.client(with_client_cert=False).ping()
    evidence(f"{type(caught.value).__name__}: {str(caught.value)[:200]}")


@contextmanager
def local_ipc_sandbox(runtime: str) -> Iterator[dict]:
    """Today's path: a sandbox on the local engine whose kernel binds IPC sockets in a bind-mounted run dir."""
    docker_runtime = DockerRuntime(docker.from_env(), image=default_tag(), namespace=f"remote-test-{os.getpid()}",
                                   uid=UID, oci_runtime=runtime)
    run_dir = Path(tempfile.mkdtemp(prefix="tsl-"))
    (run_dir / "data").mkdir()
    os.chmod(run_dir, 0o777)
    os.chmod(run_dir / "data", 0o777)
    info = new_connection_info("/run/toolshed/k")
    (run_dir / "kernel.json").write_text(json.dumps(info))
    sandbox_id = f"tl{uuid.uuid4().hex[:10]}"
    try:
        docker_runtime.create(sandbox_id, limits=LIMITS, run_dir=run_dir, data_dir=run_dir / "data", labels={})
        yield {**info, "ip": f"{run_dir}/k"}
    finally:
        docker_runtime.remove(sandbox_id)
        shutil.rmtree(run_dir, ignore_errors=True)


async def _median_trivial_cell_ms(connection_info: dict, cells: int = 30) -> float:
    connector = KernelConnector()
    sess = connector.connect(connection_info)
    try:
        await sess.wait_ready(120)
        times = []
        for _ in range(cells):
            start = time.perf_counter()
            assert (await _run(sess, "1")).outcome == "ok"
            times.append((time.perf_counter() - start) * 1000)
        return statistics.median(times)
    finally:
        sess.close()
        connector.close()


@pytest.mark.parametrize("runtime", ["runc", "runsc"])
def test_time_a_trivial_cell_over_the_channel_and_over_local_ipc(engine: SecondDockerd, runtime: str,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Numbers for the report, not a speed assertion."""
    with remote_sandbox(engine, runtime) as (_, channel):
        remote = asyncio.run(_median_trivial_cell_ms(channel.connection_info))
    with local_ipc_sandbox(runtime) as info:
        local = asyncio.run(_median_trivial_cell_ms(info))
    with capsys.disabled():
        print(f"\n[{runtime}] trivial cell, median of 30: exec channel over TLS {remote:.1f} ms, "
              f"local IPC {local:.1f} ms")
