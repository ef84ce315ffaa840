"""The Jupyter kernels API face, driven by AutoGen's own Jupyter executor (autogen-ext's DockerJupyterCodeExecutor
pointed at /jupyter) and by Open WebUI's wire calls (token in the query, no body on start, no `channel` field)."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from autogen_core import CancellationToken
from autogen_core.code_executor import CodeBlock
from autogen_ext.code_executors.docker_jupyter import DockerJupyterCodeExecutor
from autogen_ext.code_executors.docker_jupyter._jupyter_server import JupyterConnectionInfo

from orchestrator.localserver import Server
from tests.conftest import running_server

KEY = "k-jupyter"
PLOT = "import matplotlib.pyplot as plt\nplt.plot([1, 4, 9])\nplt.show()"


@pytest.fixture(scope="module")
def server(docker_ready: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("jupyter"), TOOLSHED_API_KEYS=f'["{KEY}"]',
                        TOOLSHED_POOL_SIZE="1") as srv:
        yield srv


def connection(server: Server, token: str) -> JupyterConnectionInfo:
    # AutoGen builds URLs as scheme://host[:port]/api/...: the host carries the port and the /jupyter prefix.
    return JupyterConnectionInfo(host=f"{server.base_url.removeprefix('http://')}/jupyter", use_https=False,
                                 port=None, token=token)


def test_autogens_jupyter_executor_keeps_state_and_gets_the_plot(server: Server, tmp_path: Path) -> None:
    async def scenario() -> None:
        executor = DockerJupyterCodeExecutor(jupyter_server=connection(server, KEY), output_dir=tmp_path,
                                             timeout=60)
        async with executor:
            token = CancellationToken()
            first = await executor.execute_code_blocks([CodeBlock("x = 6 * 7\nprint('set')", "python")], token)
            assert (first.exit_code, first.output.strip()) == (0, "set")
            second = await executor.execute_code_blocks([CodeBlock("print(x)", "python"),
                                                         CodeBlock(PLOT, "python")], token)
            assert second.exit_code == 0 and second.output.startswith("42")
            assert len(second.output_files) == 1
            assert second.output_files[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            failed = await executor.execute_code_blocks([CodeBlock("1 / 0", "python")], token)
            assert failed.exit_code == 1 and "ZeroDivisionError" in failed.output
            kernels = httpx.get(f"{server.base_url}/jupyter/api/kernels", headers={"Authorization": f"token {KEY}"})
            assert len(kernels.json()) == 1
        gone = httpx.get(f"{server.base_url}/jupyter/api/kernels", headers={"Authorization": f"token {KEY}"})
        assert gone.json() == []  # the executor's stop() deleted its kernel, and with it the sandbox

    asyncio.run(scenario())


def test_a_wrong_token_is_refused(server: Server, tmp_path: Path) -> None:
    refused = httpx.get(f"{server.base_url}/jupyter/api/kernelspecs?token=wrong")
    assert refused.status_code == 403 and set(refused.json()) == {"message", "reason"}

    async def scenario() -> None:
        async with DockerJupyterCodeExecutor(jupyter_server=connection(server, "wrong"), output_dir=tmp_path):
            pass

    with pytest.raises(KeyError):  # AutoGen looks for "kernelspecs" in the 403's body
        asyncio.run(scenario())


async def _execute(ws: Any, code: str) -> list[dict[str, Any]]:
    """Open WebUI's way: one execute_request (here without `channel`), frames kept until its idle status."""
    msg_id = uuid.uuid4().hex
    await ws.send(json.dumps({"header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "user",
                                         "session": uuid.uuid4().hex, "date": "", "version": "5.3"},
                              "parent_header": {}, "metadata": {},
                              "content": {"code": code, "silent": False, "store_history": True,
                                          "user_expressions": {}, "allow_stdin": False, "stop_on_error": True}}))
    frames = []
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), 60))
        if frame["parent_header"].get("msg_id") != msg_id:
            continue
        frames.append(frame)
        if frame["msg_type"] == "status" and frame["content"]["execution_state"] == "idle":
            return frames


def test_open_webuis_wire_calls(server: Server) -> None:
    base = f"{server.base_url}/jupyter"
    started = httpx.post(f"{base}/api/kernels?token={KEY}")
    assert started.status_code == 201
    kernel = started.json()["id"]

    async def scenario() -> None:
        url = f"{base.replace('http://', 'ws://')}/api/kernels/{kernel}/channels?token={KEY}"
        async with websockets.connect(url) as ws:
            await ws.send("{not json")  # dropped, as Jupyter servers drop it; the connection stays usable
            await ws.send(b"\x00binary")
            frames = await _execute(ws, "print('hello')\n" + PLOT)
            kinds = [(f["channel"], f["msg_type"]) for f in frames]
            assert kinds[0] == ("iopub", "status") and kinds[-1] == ("iopub", "status")
            assert ("shell", "execute_reply") in kinds
            stream = next(f for f in frames if f["msg_type"] == "stream")
            assert stream["content"] == {"name": "stdout", "text": "hello\n"}
            image = next(f for f in frames if f["msg_type"] == "display_data")["content"]["data"]["image/png"]
            assert base64.b64decode(image)[:4] == b"\x89PNG"
            errors = [f for f in await _execute(ws, "undefined_name") if f["msg_type"] == "error"]
            assert errors[0]["content"]["ename"] == "NameError"

    asyncio.run(scenario())
    assert httpx.delete(f"{base}/api/kernels/{kernel}?token={KEY}").status_code == 204
    unknown = httpx.get(f"{base}/api/kernels/{kernel}?token={KEY}")
    assert unknown.status_code == 404 and unknown.json()["message"] == f"Kernel does not exist: {kernel}"

    async def closed() -> None:
        url = f"{base.replace('http://', 'ws://')}/api/kernels/{kernel}/channels?token={KEY}"
        async with websockets.connect(url):
            pass

    with pytest.raises(websockets.exceptions.InvalidStatus, match="403"):
        asyncio.run(closed())


def test_a_kernel_deleted_under_an_open_socket_still_answers(server: Server) -> None:
    """Every execute_request gets its reply and its idle, even when the sandbox behind the socket is gone."""
    base = f"{server.base_url}/jupyter"
    kernel = httpx.post(f"{base}/api/kernels?token={KEY}").json()["id"]

    async def scenario() -> list[dict[str, Any]]:
        url = f"{base.replace('http://', 'ws://')}/api/kernels/{kernel}/channels?token={KEY}"
        async with websockets.connect(url) as ws:
            assert httpx.delete(f"{base}/api/kernels/{kernel}?token={KEY}").status_code == 204
            return await _execute(ws, "print('too late')")

    frames = asyncio.run(scenario())
    reply = next(f for f in frames if f["msg_type"] == "execute_reply")["content"]
    assert reply["status"] == "error" and reply["ename"] == "SandboxNotFound"
