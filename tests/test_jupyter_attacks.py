"""Attacks on the Jupyter face (issue 27 items 7 and 12), over real websockets: a revoked key's open kernel
socket, and a flood of large cells queued behind a long one."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websockets

from orchestrator.localserver import Server
from tests.conftest import Evidence, keys_cli, running_server

KEY, PROJECT = "kj", "jp"
QUEUED = 4


@pytest.fixture(scope="module")
def server(docker_ready: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("jupyter-attacks"), TOOLSHED_API_KEYS=json.dumps({KEY: PROJECT}),
                        TOOLSHED_POOL_SIZE="1", TOOLSHED_JUPYTER_QUEUED_CELLS=str(QUEUED)) as srv:
        yield srv


def start_kernel(server: Server, key: str) -> str:
    started = httpx.post(f"{server.base_url}/jupyter/api/kernels", headers={"Authorization": f"token {key}"},
                         json={"name": "python3"}, timeout=120)
    assert started.status_code == 201, started.text
    return str(started.json()["id"])


def channels(server: Server, kernel: str, key: str) -> str:
    return f"ws://127.0.0.1:{server.port}/jupyter/api/kernels/{kernel}/channels?token={key}"


def request(code: str) -> tuple[str, str]:
    msg_id = uuid.uuid4().hex
    return msg_id, json.dumps({"header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "u",
                                          "session": "s", "date": "", "version": "5.3"},
                               "parent_header": {}, "metadata": {}, "channel": "shell",
                               "content": {"code": code, "silent": False, "store_history": True,
                                           "user_expressions": {}, "allow_stdin": False}})


async def run_cell(ws: Any, code: str) -> tuple[str, dict[str, Any]]:
    """Printed text and the execute_reply's content."""
    msg_id, message = request(code)
    await ws.send(message)
    printed = ""
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), 120))
        if frame["parent_header"].get("msg_id") != msg_id:
            continue
        if frame["msg_type"] == "stream":
            printed += frame["content"]["text"]
        if frame["msg_type"] == "execute_reply":
            return printed, frame["content"]


@pytest.mark.attack("jupyter: a revoked key's open kernel websocket")
def test_a_revoked_key_runs_nothing_on_its_open_websocket(server: Server, evidence: Evidence) -> None:
    key = keys_cli(server, "create", "--project", PROJECT).stdout.strip()
    key_id = next(line.split("\t")[0] for line in keys_cli(server, "list").stdout.splitlines() if key[-4:] in line)
    kernel = start_kernel(server, key)

    async def scenario() -> str:
        async with websockets.connect(channels(server, kernel, key), max_size=None) as ws:
            assert (await run_cell(ws, "print('before')"))[0] == "before\n"
            keys_cli(server, "revoke", key_id)
            try:
                _, reply = await run_cell(ws, "open('/mnt/data/ran.txt', 'w').write('ran'); print('ran')")
                outcome = f"execute_reply {reply['status']} {reply.get('ename')}"
            except websockets.ConnectionClosed as closed:
                outcome = f"closed {closed.rcvd.code if closed.rcvd else None}"
        async with websockets.connect(channels(server, kernel, KEY), max_size=None) as ws:
            printed, _ = await run_cell(ws, "import os; print(os.path.exists('/mnt/data/ran.txt'))")
        assert printed == "False\n", printed
        return outcome

    outcome = asyncio.run(scenario())
    assert outcome in ("closed 1008", "execute_reply error Forbidden"), outcome
    evidence(f"after revocation the open socket's next cell: {outcome}; the cell never ran")


@pytest.mark.attack("jupyter: a flood of large cells queued on one kernel websocket")
def test_cells_queued_past_the_bound_are_refused_at_once(server: Server, evidence: Evidence) -> None:
    kernel = start_kernel(server, KEY)
    flood = 20

    async def scenario() -> tuple[list[str], float]:
        async with websockets.connect(channels(server, kernel, KEY), max_size=None) as ws:
            _, long_cell = request("import time; time.sleep(30)")
            await ws.send(long_cell)
            ids = []
            for _ in range(flood):
                msg_id, message = request("#" + "x" * (1 << 20) + "\n1")
                ids.append(msg_id)
                await ws.send(message)
            started = time.monotonic()
            refused: list[str] = []
            try:
                async with asyncio.timeout(20):
                    while len(refused) < flood - QUEUED:
                        frame = json.loads(await ws.recv())
                        if frame["msg_type"] == "execute_reply" and frame["parent_header"]["msg_id"] in ids:
                            refused.append(frame["content"].get("ename", frame["content"]["status"]))
            except TimeoutError:
                pass
            waited = time.monotonic() - started
        httpx.delete(f"{server.base_url}/jupyter/api/kernels/{kernel}", headers={"Authorization": f"token {KEY}"},
                     timeout=60)
        return refused, waited

    refused, waited = asyncio.run(scenario())
    # The long cell runs (or waits for its kernel) and at most QUEUED wait behind it; the rest come back at once.
    assert refused == ["QueueFull"] * (flood - QUEUED), refused
    evidence(f"{flood} 1 MiB cells behind a 30 s one: {len(refused)} refused with QueueFull within {waited:.1f} s; "
             f"{QUEUED} queued")
