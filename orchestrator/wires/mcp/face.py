"""The MCP face: a streamable-HTTP MCP server at /mcp, built with the official `mcp` SDK, behind the same keys.

Each MCP session runs code in its own sandbox (the thread `mcp-<digest of the session id>`), unless a call names a
`thread_id` to share that thread's sandbox with other sessions or with `/v1/tool_calls`. Long cells send progress
notifications every second, so clients with short request timeouts (5 s in the OpenAI Agents SDK) keep waiting.
Sessions are bound to the key that opened them, and each project has a quota of open ones (sessions.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from collections.abc import Callable
from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.streamable_http import MCP_SESSION_ID_HEADER
from mcp.server.streamable_http_manager import DEFAULT_SESSION_IDLE_TIMEOUT
from mcp.types import INVALID_REQUEST, CallToolResult, ToolAnnotations
from pydantic import Field
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orchestrator import __version__
from orchestrator.services.container import Services
from orchestrator.tools.cells import Item
from orchestrator.web.auth import bearer_caller
from orchestrator.wires.mcp.sessions import SessionQuota, hide_session_ids, principal
from orchestrator.wires.mcp.tools import McpTools, Session

PATH = "/mcp"
_PROGRESS_EVERY = 1.0
ThreadId = Annotated[str | None, Field(description="Share the sandbox of this thread (as named in /v1/tool_calls "
                                                   "or by other MCP sessions) instead of this session's own.")]


class McpFace:
    """The MCP server and its route; `run()` is the session manager's lifetime (the app's lifespan enters it)."""

    def __init__(self, services: Callable[[], Services], *, host: str, json_response: bool = False,
                 idle_timeout: float = DEFAULT_SESSION_IDLE_TIMEOUT) -> None:
        self._tools = McpTools(services)
        self.server = MCPServer("toolshed", version=__version__, instructions=(
            "Run Python in a sandbox that keeps its variables and files (/mnt/data) across calls of this session, "
            "and search the vector stores of your project. Files written under /mnt/data come back as links."))
        self._register()
        starlette = self.server.streamable_http_app(streamable_http_path=PATH, host=host, json_response=json_response,
                                                    session_idle_timeout=idle_timeout)
        endpoint = starlette.routes[0].endpoint  # type: ignore[attr-defined]
        quota = SessionQuota(lambda project: _mcp_sessions(services(), project), idle_timeout)
        self.route = Route(PATH, endpoint=_KeyCheck(endpoint, services, quota), methods=["GET", "POST", "DELETE"])
        hide_session_ids()

    def run(self) -> contextlib.AbstractAsyncContextManager[None]:
        return self.server.session_manager.run()

    @staticmethod
    def _session(ctx: Context, thread_id: str | None) -> Session:
        request = ctx.request_context.request
        assert isinstance(request, Request)  # streamable HTTP hands each call its HTTP request
        session_id = request.headers.get("mcp-session-id", "stateless")
        # The thread is named by a digest of the session id: thread names reach logs, session ids must not.
        own = f"mcp-{hashlib.sha256(session_id.encode()).hexdigest()[:32]}"
        return Session(request.state.caller, thread_id or own, str(request.base_url).rstrip("/"))

    def _register(self) -> None:
        tools, tool = self._tools, self.server.tool

        @tool(description="Run Python code in this session's Jupyter kernel (variables persist between calls; "
                          "numpy, pandas, matplotlib and more are installed; no network). Returns the printed "
                          "output and any error, every displayed figure as an image, and every file written "
                          "under /mnt/data as a download link.",
              annotations=ToolAnnotations(title="Run Python", open_world_hint=False))
        async def execute_code(code: Annotated[str, Field(description="Python source to run as one cell.")],
                               ctx: Context,
                               timeout: Annotated[float | None, Field(description="Seconds before the cell is "
                                                                      "interrupted (the server's default if "
                                                                      "omitted).")] = None,
                               thread_id: ThreadId = None) -> CallToolResult:
            session = self._session(ctx, thread_id)
            outputs = 0

            async def on_output(item: Item) -> None:
                nonlocal outputs
                outputs += 1

            async def report() -> None:
                started = time.monotonic()
                while True:
                    await asyncio.sleep(_PROGRESS_EVERY)
                    await ctx.report_progress(time.monotonic() - started, None,
                                              f"running; {outputs} outputs so far")

            reporter = asyncio.create_task(report())
            try:
                return await tools.execute_code(session, code, timeout, on_output)
            finally:
                reporter.cancel()

        @tool(description="Write a file into /mnt/data of this session's sandbox, where code can read it.")
        async def upload_file(filename: Annotated[str, Field(description="The file's name (no folders).")],
                              content: Annotated[str, Field(description="The file's content, as text or base64.")],
                              ctx: Context,
                              encoding: Annotated[str, Field(pattern="^(text|base64)$",
                                                             description="'text' or 'base64'.")] = "text",
                              thread_id: ThreadId = None) -> CallToolResult:
            return await tools.upload_file(self._session(ctx, thread_id), filename, content, encoding)

        @tool(description="List the files in /mnt/data of this session's sandbox (uploaded or written by code).",
              annotations=ToolAnnotations(read_only_hint=True))
        async def list_files(ctx: Context, thread_id: ThreadId = None) -> CallToolResult:
            return await tools.list_files(self._session(ctx, thread_id))

        @tool(description="Read a file from /mnt/data of this session's sandbox: text as text, anything else as "
                          "an embedded resource.", annotations=ToolAnnotations(read_only_hint=True))
        async def read_file(path: Annotated[str, Field(description="Path under /mnt/data, e.g. 'out.csv'.")],
                            ctx: Context, thread_id: ThreadId = None) -> CallToolResult:
            return await tools.read_file(self._session(ctx, thread_id), path)

        @tool(description="Search the project's vector stores (hybrid keyword and semantic search). Returns the "
                          "best passages, each with its file name, file id, page and score, to cite.",
              annotations=ToolAnnotations(read_only_hint=True))
        async def file_search(query: str, ctx: Context,
                              vector_store_ids: Annotated[list[str] | None, Field(
                                  description="Stores to search; all of the project's if omitted.")] = None,
                              max_num_results: Annotated[int, Field(ge=1, le=50)] = 10) -> CallToolResult:
            return await tools.file_search(self._session(ctx, None), query, vector_store_ids, max_num_results)

        @tool(description="Search the project's documents; returns {results: [{id, title, url}]} (ChatGPT "
                          "connectors' search).", annotations=ToolAnnotations(read_only_hint=True))
        async def search(query: str, ctx: Context) -> CallToolResult:
            return await tools.search(self._session(ctx, None), query)

        @tool(description="Fetch a document found by search, by its id; returns {id, title, text, url, metadata}.",
              annotations=ToolAnnotations(read_only_hint=True))
        async def fetch(id: str, ctx: Context) -> CallToolResult:
            return await tools.fetch(self._session(ctx, None), id)


def _mcp_sessions(services: Services, project: str) -> int:
    return services.settings.limits_of(project).mcp_sessions or services.settings.project_mcp_sessions


class _KeyCheck:
    """The same bearer keys as /v1: a request without a valid one is a 401 before the MCP session sees it; the
    caller it acts for rides in the request's state to the tools, and the key's principal in the scope's `user`,
    which the SDK binds each session to. A project at its quota of open sessions gets a 429 for another."""

    def __init__(self, app: ASGIApp, services: Callable[[], Services], quota: SessionQuota) -> None:
        self._app, self._services, self._quota = app, services, quota

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
        caller = bearer_caller(self._services().keys, headers)
        if caller is None:
            await _refuse(send, 401, {"error": {"message": "Incorrect API key provided.",
                                                "type": "invalid_request_error", "param": None,
                                                "code": "invalid_api_key"}}, [(b"www-authenticate", b"Bearer")])
            return
        user = principal(headers.get("authorization", ""))
        scope["user"] = user
        scope.setdefault("state", {})["caller"] = caller
        session_id, owner = headers.get(MCP_SESSION_ID_HEADER), user.access_token.client_id
        if session_id is None and scope["method"] == "POST":
            await self._open(scope, receive, send, caller.project, owner)
            return
        status = [0]
        with self._quota.request(session_id or "", owner):
            await self._app(scope, receive, _watch(send, status))
        if session_id is not None and scope["method"] == "DELETE" and status[0] < 400:
            self._quota.closed(session_id, owner)

    async def _open(self, scope: Scope, receive: Receive, send: Send, project: str, owner: str) -> None:
        fits, limit = self._quota.room(project)
        if not fits:
            message = (f"Project '{project}' may have {limit} MCP sessions open at once; end one (DELETE) or let "
                       "one expire first.")
            await _refuse(send, 429, {"jsonrpc": "2.0", "id": None, "error": {"code": INVALID_REQUEST,
                                                                             "message": message}})
            return
        headers: list[tuple[bytes, bytes]] = []
        status = [0]
        with self._quota.opening(project):
            await self._app(scope, receive, _watch(send, status, headers))
        session_id = dict(headers).get(MCP_SESSION_ID_HEADER.encode())
        if status[0] < 400 and session_id:
            self._quota.opened(session_id.decode("latin-1"), project, owner)


def _watch(send: Send, status: list[int], headers: list[tuple[bytes, bytes]] | None = None) -> Send:
    """`send`, noting the response's status (and headers) on the way."""

    async def watched(message: Message) -> None:
        if message["type"] == "http.response.start":
            status[0] = message["status"]
            if headers is not None:
                headers.extend(message.get("headers", []))
        await send(message)

    return watched


async def _refuse(send: Send, status: int, body: dict[str, Any],
                  headers: list[tuple[bytes, bytes]] | None = None) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), *(headers or [])]})
    await send({"type": "http.response.body", "body": json.dumps(body).encode()})
