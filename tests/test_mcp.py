"""The MCP face driven by the official `mcp` client over streamable HTTP: stateful code per session, figures as
images, written files as links that download, progress during long cells, vector-store search with citations,
ChatGPT's search/fetch shapes, and the same keys as /v1."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from mcp.client import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.types import CallToolResult, ImageContent, ResourceLink, TextContent
from openai import OpenAI

from orchestrator.localserver import Server
from tests.conftest import running_server
from tests.datasets import DOCS

KEY = "k-mcp"
PDF = DOCS / "pdf" / "arxiv-1706.03762-attention-is-all-you-need.pdf"


@pytest.fixture(scope="module")
def server(docker_ready: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("mcp"), TOOLSHED_API_KEYS=f'{{"{KEY}": "mcp-project"}}',
                        TOOLSHED_POOL_SIZE="1") as srv:
        yield srv


@asynccontextmanager
async def mcp_session(server: Server, key: str = KEY) -> AsyncIterator[ClientSession]:
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {key}"})
    async with (http, streamable_http_client(f"{server.base_url}/mcp", http_client=http) as (read, write),
                ClientSession(read, write) as session):
        await session.initialize()
        yield session


def texts(result: CallToolResult) -> str:
    return "".join(block.text for block in result.content if isinstance(block, TextContent))


def test_code_runs_statefully_per_session_with_images_links_and_progress(server: Server) -> None:
    async def scenario() -> None:
        async with mcp_session(server) as first, mcp_session(server) as second:
            listed = {tool.name: tool for tool in (await first.list_tools()).tools}
            assert set(listed) == {"execute_code", "upload_file", "list_files", "read_file", "file_search",
                                   "search", "fetch"}
            assert listed["execute_code"].input_schema["required"] == ["code"]

            assert not (await first.call_tool("execute_code", {"code": "x = 41"})).is_error
            assert texts(await first.call_tool("execute_code", {"code": "print(x + 1)"})) == "42\n"
            other = await second.call_tool("execute_code", {"code": "print(x)"})
            assert other.is_error and "NameError" in texts(other)  # each session has its own sandbox

            drawn = await first.call_tool("execute_code", {"code": (
                "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.show()\n"
                "open('/mnt/data/report.csv', 'w').write('a,b\\n1,2\\n')")})
            images = [b for b in drawn.content if isinstance(b, ImageContent)]
            assert len(images) == 1 and base64.b64decode(images[0].data)[:8] == b"\x89PNG\r\n\x1a\n"
            links = [b for b in drawn.content if isinstance(b, ResourceLink)]
            assert [(link.name, link.mime_type) for link in links] == [("report.csv", "text/csv")]
            download = httpx.get(str(links[0].uri), headers={"Authorization": f"Bearer {KEY}"})
            assert download.content == b"a,b\n1,2\n"

            progress: list[float] = []

            async def on_progress(done: float, total: float | None, message: str | None) -> None:
                progress.append(done)

            slow = await first.call_tool("execute_code", {"code": "import time; time.sleep(3); print('done')"},
                                         progress_callback=on_progress)
            assert texts(slow) == "done\n" and len(progress) >= 2 and progress == sorted(progress)

            await first.call_tool("upload_file", {"filename": "in.bin", "encoding": "base64",
                                                  "content": base64.b64encode(b"\x00\xffdata").decode()})
            ran = await first.call_tool("execute_code", {"code": "print(open('/mnt/data/in.bin','rb').read())"})
            assert texts(ran) == "b'\\x00\\xffdata'\n"
            assert texts(await first.call_tool("read_file", {"path": "/mnt/data/report.csv"})) == "a,b\n1,2\n"
            names = str((await first.call_tool("list_files", {})).content)
            assert "report.csv" in names and "in.bin" in names
            missing = await first.call_tool("read_file", {"path": "nope.txt"})
            assert missing.is_error and "list_files" in texts(missing)

    asyncio.run(scenario())


def test_file_search_cites_and_chatgpt_search_fetch_shapes(server: Server, tmp_path: Path) -> None:
    client = OpenAI(base_url=f"{server.base_url}/v1", api_key=KEY, max_retries=0)
    store = client.vector_stores.create(name="papers")
    with PDF.open("rb") as fh:
        indexed = client.vector_stores.files.upload_and_poll(vector_store_id=store.id, file=fh)
    assert indexed.status == "completed"

    async def scenario() -> None:
        async with mcp_session(server) as session:
            found = texts(await session.call_tool("file_search", {"query": "scaled dot-product attention",
                                                                  "max_num_results": 3}))
            assert found.startswith(f"[1] {PDF.name} (file {indexed.id}, page ")
            assert "attention" in found.lower()
            unknown = await session.call_tool("file_search", {"query": "x", "vector_store_ids": ["vs_nope"]})
            assert unknown.is_error and "vs_nope" in texts(unknown)

            results = json.loads(texts(await session.call_tool("search", {"query": "multi-head attention"})))
            assert results["results"][0] == {"id": indexed.id, "title": PDF.name,
                                             "url": f"{server.base_url}/v1/files/{indexed.id}/content"}
            document = json.loads(texts(await session.call_tool("fetch", {"id": indexed.id})))
            assert set(document) == {"id", "title", "text", "url", "metadata"}
            assert document["id"] == indexed.id and "Transformer" in document["text"]

    asyncio.run(scenario())


def test_a_wrong_key_is_refused_before_any_session(server: Server) -> None:
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                  "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                             "clientInfo": {"name": "t", "version": "1"}}}
    refused = httpx.post(f"{server.base_url}/mcp", json=initialize, headers={
        "Authorization": "Bearer wrong", "Accept": "application/json, text/event-stream"})
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"

    async def scenario() -> None:
        async with mcp_session(server, key="wrong"):
            pass

    with pytest.raises(BaseException):  # noqa: B017 (the client surfaces the 401 as its own exception group)
        asyncio.run(scenario())
