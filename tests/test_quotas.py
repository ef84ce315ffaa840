"""Per-project quotas (issue 27 item 8): at the server's sandbox cap a project makes room among its own idle
sandboxes and never evicts another project's; a project at its quota of MCP sessions or Jupyter kernels gets a
429 in that face's shape while other projects are unaffected."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
import pytest
from mcp.client import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from openai import OpenAI

from orchestrator.localserver import Server
from tests.conftest import Evidence, running_server

KEYS = {"ka": "alpha", "kb": "beta"}
INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}}


@pytest.fixture(scope="module")
def server(docker_ready: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("quotas"), TOOLSHED_API_KEYS=json.dumps(KEYS),
                        TOOLSHED_MAX_SANDBOXES="3", TOOLSHED_POOL_SIZE="0", TOOLSHED_PROJECT_MCP_SESSIONS="2",
                        TOOLSHED_PROJECT_JUPYTER_KERNELS="1") as srv:
        yield srv


def sdk(server: Server, key: str) -> OpenAI:
    return OpenAI(base_url=f"{server.base_url}/v1", api_key=key, max_retries=0, timeout=120)


def execute(server: Server, key: str, container: str, code: str) -> str:
    done = httpx.post(f"{server.base_url}/v1/containers/{container}/execute", json={"code": code},
                      headers={"Authorization": f"Bearer {key}"}, timeout=120).json()
    return "".join(str(o.get("logs", "")) for o in done["outputs"])


@pytest.mark.attack("quotas: evicting another project's sandbox at the server's cap")
def test_at_the_cap_a_project_reclaims_its_own_idle_sandbox_not_anothers(server: Server,
                                                                         evidence: Evidence) -> None:
    alpha, beta = sdk(server, "ka"), sdk(server, "kb")
    kept = alpha.containers.create(name="alpha's").id
    execute(server, "ka", kept, "x = 'alpha state'")
    betas = [beta.containers.create(name=f"beta {n}").id for n in range(3)]  # the third is past the cap of 3
    assert alpha.containers.retrieve(kept).status == "running"
    assert [beta.containers.retrieve(b).status for b in betas] == ["expired", "running", "running"]
    assert execute(server, "ka", kept, "print(x)") == "alpha state\n"
    for box in betas:
        beta.containers.delete(box)
    alpha.containers.delete(kept)
    evidence("beta's third sandbox at the cap of 3 reclaimed beta's own idle one; alpha's kept its variables")


@asynccontextmanager
async def mcp_session(server: Server, key: str) -> AsyncIterator[ClientSession]:
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {key}"})
    async with (http, streamable_http_client(f"{server.base_url}/mcp", http_client=http) as (read, write),
                ClientSession(read, write) as session):
        await session.initialize()
        yield session


def open_raw(server: Server, key: str) -> httpx.Response:
    return httpx.post(f"{server.base_url}/mcp", json=INITIALIZE, timeout=60, headers={
        "Authorization": f"Bearer {key}", "Accept": "application/json, text/event-stream"})


@pytest.mark.attack("quotas: one project filling the server's MCP sessions")
def test_a_project_at_its_mcp_session_quota_gets_429(server: Server, evidence: Evidence) -> None:
    async def scenario() -> httpx.Response:
        async with AsyncExitStack() as stack:
            for _ in range(2):
                await stack.enter_async_context(mcp_session(server, "ka"))
            refused = await asyncio.to_thread(open_raw, server, "ka")
            async with mcp_session(server, "kb") as other:  # another project is unaffected
                assert (await other.list_tools()).tools
        async with mcp_session(server, "ka") as again:  # the two closed sessions gave their places back
            assert (await again.list_tools()).tools
        return refused

    refused = asyncio.run(scenario())
    assert refused.status_code == 429, refused.text
    body = refused.json()
    assert body["jsonrpc"] == "2.0" and "2 MCP sessions" in body["error"]["message"]
    evidence("a third session of a project limited to 2: 429 (JSON-RPC error); other project unaffected")


@pytest.mark.attack("quotas: one project filling the server with Jupyter kernels")
def test_a_project_at_its_jupyter_kernel_quota_gets_429(server: Server, evidence: Evidence) -> None:
    def start(key: str) -> httpx.Response:
        return httpx.post(f"{server.base_url}/jupyter/api/kernels", headers={"Authorization": f"token {key}"},
                          timeout=120)

    first = start("ka")
    assert first.status_code == 201, first.text
    refused = start("ka")
    assert refused.status_code == 429 and set(refused.json()) == {"message", "reason"}, refused.text
    other = start("kb")
    assert other.status_code == 201, other.text
    for key, kernel in (("ka", first.json()["id"]), ("kb", other.json()["id"])):
        httpx.delete(f"{server.base_url}/jupyter/api/kernels/{kernel}", headers={"Authorization": f"token {key}"},
                     timeout=60)
    evidence(f"a second kernel of a project limited to 1: 429 {refused.json()}")
