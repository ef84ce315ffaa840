"""Attacks on the MCP face (issue 27 items 2 and 10), driven by the official `mcp` client and, for the attacker's
forged requests, plain HTTP: another key naming a session's id, and read_file on a file grown since its last scan.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp.client import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.types import CallToolResult, ResourceLink, TextContent

from orchestrator.localserver import Server
from tests.conftest import Evidence, running_server

KEYS = {"ka": "alpha", "ka2": "alpha", "kb": "beta"}
GROWN = 150 << 20


@pytest.fixture(scope="module")
def server(docker_ready: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("mcp-attacks"), TOOLSHED_API_KEYS=json.dumps(KEYS),
                        TOOLSHED_POOL_SIZE="1") as srv:
        yield srv


@asynccontextmanager
async def mcp_session(server: Server, key: str, seen: dict[str, str]) -> AsyncIterator[ClientSession]:
    """The official client; `seen` gets the session id the server handed it."""
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {key}"})

    async def note(response: Any) -> None:
        if "mcp-session-id" in response.headers:
            seen["id"] = response.headers["mcp-session-id"]

    http.event_hooks["response"].append(note)
    async with (http, streamable_http_client(f"{server.base_url}/mcp", http_client=http) as (read, write),
                ClientSession(read, write) as session):
        await session.initialize()
        yield session


def texts(result: CallToolResult) -> str:
    return "".join(block.text for block in result.content if isinstance(block, TextContent))


def forged(server: Server, method: str, key: str, session_id: str, body: dict[str, Any] | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}", "Mcp-Session-Id": session_id,
               "Accept": "application/json, text/event-stream", "Mcp-Protocol-Version": "2025-06-18"}
    return httpx.request(method, f"{server.base_url}/mcp", headers=headers, json=body, timeout=60)


@pytest.mark.attack("mcp: another key carrying a session's id")
def test_another_key_cannot_list_call_or_end_a_session(server: Server, evidence: Evidence) -> None:
    async def scenario() -> list[int]:
        seen: dict[str, str] = {}
        statuses = []
        async with mcp_session(server, "ka", seen) as owner:
            assert not (await owner.call_tool("execute_code", {"code": "x = 41"})).is_error
            session_id = seen["id"]
            for key in ("kb", "ka2"):  # another project's key, and another key of the same project
                calls = [("POST", {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
                         ("POST", {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
                             "name": "execute_code", "arguments": {"code": "x = 'hijacked'; print(x)"}}}),
                         ("DELETE", None)]
                for method, body in calls:
                    answer = await asyncio.to_thread(forged, server, method, key, session_id, body)
                    assert "hijacked" not in answer.text and "execute_code" not in answer.text
                    statuses.append(answer.status_code)
            assert texts(await owner.call_tool("execute_code", {"code": "print(x + 1)"})) == "42\n"
        assert session_id not in server.log.read_text()
        return statuses

    statuses = asyncio.run(scenario())
    assert statuses == [404] * 6
    evidence("tools/list, tools/call and DELETE with another key: 404 each; the session's x intact; "
             "no session id in the server log")


def _grown_file(data_dir: Path, name: str) -> Path | None:
    for found in (data_dir / "sandboxes").glob(f"*/**/{name}"):
        if found.stat().st_size >= GROWN:
            return found
    return None


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) << 10
    raise AssertionError("no VmRSS")


class PeakRss:
    """The server's highest RSS while the block runs, sampled every 10 ms."""

    def __init__(self, pid: int) -> None:
        self.pid, self.before, self.peak = pid, _rss(pid), 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample)

    def _sample(self) -> None:
        while not self._done.wait(0.01):
            self.peak = max(self.peak, _rss(self.pid))

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._thread.join()
        self.peak = max(self.peak, _rss(self.pid))


@pytest.mark.attack("mcp: read_file of a file grown after its last scan")
def test_read_file_checks_the_size_when_it_reads(server: Server, evidence: Evidence) -> None:
    grow = ("import threading, time\nopen('/mnt/data/grow.bin', 'w').write('x')\n"
            "def grow():\n    time.sleep(2)\n    with open('/mnt/data/grow.bin', 'a') as f:\n"
            f"        for _ in range({GROWN >> 20}):\n            f.write('x' * (1 << 20))\n"
            "threading.Thread(target=grow).start()\n")
    assert server.process is not None

    async def scenario() -> tuple[CallToolResult, PeakRss]:
        async with mcp_session(server, "ka", {}) as session:
            assert not (await session.call_tool("execute_code", {"code": grow})).is_error
            listed = await session.call_tool("list_files", {})
            seen = [(b.name, b.size) for b in listed.content if isinstance(b, ResourceLink)]
            assert seen == [("grow.bin", 1)]  # the scan saw one byte
            deadline = time.monotonic() + 120
            while _grown_file(server.data_dir, "grow.bin") is None:
                assert time.monotonic() < deadline, "the file never grew"
                await asyncio.sleep(0.5)
            assert server.process is not None
            with PeakRss(server.process.pid) as rss:
                result = await session.call_tool("read_file", {"path": "grow.bin"})
            return result, rss

    result, rss = asyncio.run(scenario())
    assert result.is_error and "too large" in texts(result), texts(result)[:200]
    growth = rss.peak - rss.before
    assert growth < 200 << 20, f"server RSS grew {growth >> 20} MiB"
    evidence(f"read_file of a {GROWN >> 20} MiB file scanned at 1 byte: a 'too large' error; "
             f"server RSS +{growth >> 20} MiB")
