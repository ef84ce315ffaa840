"""The other servers' wires against the direct path: the round trip of a trivial execution (`print(1)`) on a warm
sandbox through each face, against `POST /v1/containers/{id}/execute` in the same run, the faces taken in turn so
each sees the same machine. Prints JSON with p50/p90/p99 per face and its overhead over the direct path at p50;
the raw samples are kept in bench/results/faces.json.

- direct: POST /v1/containers/{id}/execute (httpx, kept-alive connection);
- mcp: `execute_code` as one JSON-RPC POST per call over the same httpx client as the direct path, in an MCP
  session (the face's own cost, client for client);
- mcp-client: the same call through the official mcp client (its own per-call work included);
- jupyter: an `execute_request` on a kernel's channels websocket, until its `idle` status;
- librechat: POST /librechat/v1/exec with a runtime session (so its sandbox stays warm).

Run: .venv/bin/python bench/faces.py [--runs 200]   (needs Docker + image)
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(ROOT), *(p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent)]

import httpx
import websockets
from mcp.client import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from bench.sandbox import WARM_UPS, Samples
from orchestrator.localserver import Server

RESULTS = ROOT / "bench" / "results" / "faces.json"
CODE = "print(1)"
PROTOCOL = "2025-06-18"  # what the MCP clients in the field (Claude Desktop, Cursor) speak today
Trip = Callable[[], Awaitable[bool]]


async def direct(http: httpx.AsyncClient) -> Trip:
    container = (await http.post("/v1/containers", json={"name": "bench"})).json()["id"]

    async def trip() -> bool:
        response = await http.post(f"/v1/containers/{container}/execute", json={"code": CODE})
        return response.json()["outputs"][0]["logs"] == "1\n"

    return trip


async def mcp_post(http: httpx.AsyncClient) -> Trip:
    accept = {"Accept": "application/json, text/event-stream"}
    opened = await http.post("/mcp", headers=accept, json={
        "jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": PROTOCOL, "capabilities": {},
            "clientInfo": {"name": "bench", "version": "1"}}})
    headers = {**accept, "mcp-session-id": opened.headers["mcp-session-id"],
               "mcp-protocol-version": PROTOCOL}
    await http.post("/mcp", headers=headers, json={"jsonrpc": "2.0", "method": "notifications/initialized"})
    ids = itertools.count(1)

    async def trip() -> bool:
        response = await http.post("/mcp", headers=headers, json={
            "jsonrpc": "2.0", "id": next(ids), "method": "tools/call",
            "params": {"name": "execute_code", "arguments": {"code": CODE}}})
        # The answer is an event stream (so a long cell can send progress first); its last event is the result.
        event = response.text.strip().rsplit("\ndata: ", 1)[-1]
        return json.loads(event)["result"]["content"][0]["text"] == "1\n"

    return trip


def mcp_client(session: ClientSession) -> Trip:
    async def trip() -> bool:
        result = await session.call_tool("execute_code", {"code": CODE})
        return result.content[0].text == "1\n"  # type: ignore[union-attr]

    return trip


async def jupyter(http: httpx.AsyncClient, base_url: str) -> tuple[Trip, websockets.ClientConnection]:
    kernel = (await http.post("/jupyter/api/kernels")).json()["id"]
    ws = await websockets.connect(f"{base_url.replace('http://', 'ws://')}/jupyter/api/kernels/{kernel}/channels")

    async def trip() -> bool:
        msg_id = uuid.uuid4().hex
        await ws.send(json.dumps({"header": {"msg_id": msg_id, "msg_type": "execute_request", "session": "b",
                                             "username": "b", "date": "", "version": "5.3"},
                                  "parent_header": {}, "metadata": {}, "channel": "shell",
                                  "content": {"code": CODE, "silent": False}}))
        text = ""
        while True:
            frame = json.loads(await ws.recv())
            if frame["parent_header"].get("msg_id") != msg_id:
                continue
            if frame["msg_type"] == "stream":
                text += frame["content"]["text"]
            if frame["msg_type"] == "status" and frame["content"]["execution_state"] == "idle":
                return text == "1\n"

    return trip, ws


def librechat(http: httpx.AsyncClient) -> Trip:
    async def trip() -> bool:
        response = await http.post("/librechat/v1/exec", json={"lang": "py", "code": CODE,
                                                              "runtime_session_hint": "bench"})
        return json.loads(response.content)["stdout"] == "1\n"

    return trip


async def measure(trips: dict[str, Trip], runs: int) -> dict[str, Samples]:
    samples = {name: Samples() for name in trips}
    for _ in range(WARM_UPS):
        for trip in trips.values():
            await trip()
    order = list(trips.items())
    for _ in range(runs):
        # In turn, so a slow moment of the machine hits every face alike, and in a new order each round, so no face
        # always follows the same one (whose unfinished work after its answer would land on it).
        random.shuffle(order)
        for name, trip in order:
            started = time.perf_counter()
            ok = await trip()
            if ok:
                samples[name].seconds.append(time.perf_counter() - started)
            else:
                samples[name].failures += 1
    return samples


async def run(server: Server, runs: int) -> dict[str, Samples]:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as http:
        client_http = create_mcp_http_client()
        async with (client_http, streamable_http_client(f"{server.base_url}/mcp", http_client=client_http) as streams,
                    ClientSession(*streams) as session):
            await session.initialize()
            jupyter_trip, ws = await jupyter(http, server.base_url)
            try:
                return await measure({"direct": await direct(http), "mcp": await mcp_post(http),
                                      "mcp-client": mcp_client(session), "jupyter": jupyter_trip,
                                      "librechat": librechat(http)}, runs)
            finally:
                await ws.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    server = Server(Path(tempfile.mkdtemp(prefix="toolshed-bench-faces-")), TOOLSHED_POOL_SIZE="1")
    server.start()
    try:
        samples = asyncio.run(run(server, args.runs))
    finally:
        server.stop()
        server.remove_containers()
    summaries = {name: s.summary() for name, s in samples.items()}
    baseline = summaries["direct"]["p50_ms"]
    for name, summary in summaries.items():
        if name != "direct" and "p50_ms" in summary:
            summary["overhead_p50_ms"] = round(summary["p50_ms"] - baseline, 2)
    report = {"runs": args.runs, "code": CODE, "faces": summaries}
    print(json.dumps(report, indent=1))
    args.out.write_text(json.dumps({**report, "samples_ms": {
        name: [round(x * 1000, 3) for x in s.seconds] for name, s in samples.items()}}))


if __name__ == "__main__":
    main()
