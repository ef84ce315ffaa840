"""Sandboxes on a Docker engine that shares no path with the server (issue 33): a second dockerd on
this machine, reached over mutual TLS; the kernel's channels over a Docker exec (the files: test_remote_files.py)."""

from __future__ import annotations

import asyncio
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
