"""Requests for a container that another replica holds, forwarded to that replica (services/sandbox_homes.py).

A sandbox runs on the Docker Engine of the replica that made it; its kernel's memory cannot move. So a request
under /v1/containers/{id} or /jupyter/api/kernels/{id} that reaches another replica is passed on, body and answer
streamed, with the caller's own key: the holding replica checks it as it checks any request. Only a request whose
key is valid here, for a container of the caller's own project, is passed on; a passed-on request is never passed
on again. A caller who goes away closes the passed-on request too (the holder then interrupts its cell, as for a
caller of its own). A holder that does not answer gets a 503. The Jupyter kernel channels (a websocket) are not
forwarded.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Callable, Sequence

import httpx
from starlette.datastructures import Headers, QueryParams
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from orchestrator import errors
from orchestrator.services.container import Services
from orchestrator.services.projects import Caller
from orchestrator.web.gate import Door, door_of, has_body, shaped_error

log = logging.getLogger("toolshed.forwarding")
FORWARDED = "x-toolshed-forwarded"
_CONTAINER_PATHS = re.compile(r"^/(?:v1/containers|jupyter/api/kernels)/([A-Za-z0-9_-]+)")
# Headers of one connection, not of the request (RFC 9110 section 7.6.1), and the host the holder names itself.
_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "host"}
# This server writes its own; the holder's copies would be sent twice.
_OWN = {"date", "server"}
_GONE = ("The replica holding this container does not answer; it may have stopped, and its sandboxes with it. "
         "Create a new container.")


class CallerLeft(Exception):
    """The caller disconnected while its request body was being passed on."""


class Forwarder:
    def __init__(self, app: ASGIApp, doors: Sequence[Door], services: Callable[[], Services],
                 answer_within: float) -> None:
        """`answer_within`: seconds the holder may take to start its answer (the longest cell, and a margin)."""
        self.app, self.doors, self.services = app, doors, services
        self._answer_within = answer_within
        # A stalled request body holds its connection at most a minute; a full pool is a 503, not a wait.
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(None, connect=5.0, write=60.0, pool=5.0),
                                         limits=httpx.Limits(max_connections=1000, max_keepalive_connections=64))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        home = self._home(scope) if scope["type"] == "http" else None
        if home is None:
            await self.app(scope, receive, send)
            return
        await self._forward(home, scope, receive, send)

    def _home(self, scope: Scope) -> str | None:
        """The holder's address, if the request is for a container of the caller's that another replica holds."""
        match = _CONTAINER_PATHS.match(scope["path"])
        headers = Headers(scope=scope)
        if match is None or FORWARDED in headers:
            return None
        services = self.services()
        door = door_of(self.doors, scope["path"])
        try:
            home = services.sandbox_homes.elsewhere(match.group(1))
            if home is None:  # held here (or alone, with no replica address): no key looked up twice
                return None
            caller = door.authenticate(services, headers, QueryParams(scope["query_string"])) if door else None
        except (errors.InvalidRequest, errors.Unavailable):  # the route answers both in its face's shape
            return None
        if caller is None:  # a bad key: the route answers it, in its own shape
            return None
        # Another project's container is as unknown here as anywhere: the route answers 404.
        return home if not isinstance(caller, Caller) or services.owners.sees(caller, match.group(1)) else None

    async def _forward(self, home: str, scope: Scope, receive: Receive, send: Send) -> None:
        body = _Body(receive, expected=has_body(Headers(scope=scope)))
        path = scope.get("raw_path") or scope["path"].encode()  # as the caller sent it: %3F stays in the path
        query = scope["query_string"]
        url = home + path.decode("latin-1") + (f"?{query.decode('latin-1')}" if query else "")
        sent = [(k, v) for k, v in Headers(scope=scope).items() if k not in _HOP] + [(FORWARDED, "1")]
        request = self._client.build_request(scope["method"], url, headers=sent,
                                             content=body if body.expected else None)
        watch = asyncio.create_task(body.left())
        try:
            answer = await self._answer(request, watch)
            if answer is None:
                return
            try:
                await self._relay(answer, send, watch)
            finally:
                await answer.aclose()
        except HTTPException as exc:  # the body caps' 413, raised while the body streamed on
            await shaped_error(self.doors, scope, exc.status_code, str(exc.detail), None)(scope, receive, send)
        except (httpx.HTTPError, TimeoutError):
            log.warning("the replica at %s holding %s does not answer", home, scope["path"])
            await shaped_error(self.doors, scope, 503, _GONE, "unavailable")(scope, receive, send)
        finally:
            watch.cancel()

    async def _answer(self, request: httpx.Request, watch: asyncio.Task[None]) -> httpx.Response | None:
        """The holder's answer (headers read), or None if the caller left first."""
        sending = asyncio.ensure_future(self._client.send(request, stream=True))
        done, _ = await asyncio.wait({sending, watch}, timeout=self._answer_within,
                                     return_when=asyncio.FIRST_COMPLETED)
        if sending in done:
            try:
                return sending.result()
            except CallerLeft:
                return None
        sending.cancel()
        if watch in done:
            return None
        raise TimeoutError

    async def _relay(self, answer: httpx.Response, send: Send, watch: asyncio.Task[None]) -> None:
        """The answer, streamed to the caller; a caller who leaves closes it (and so the holder's request)."""
        watch.add_done_callback(lambda _: asyncio.ensure_future(answer.aclose()))
        await send({"type": "http.response.start", "status": answer.status_code,
                    "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in answer.headers.multi_items()
                                if k.lower() not in _HOP | _OWN]})
        try:
            async for chunk in answer.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except (httpx.HTTPError, httpx.StreamClosed):
            if not watch.done():
                log.warning("a forwarded answer broke off")
        await send({"type": "http.response.body", "body": b"", "more_body": False})


class _Body:
    """The request body as the caller sends it, then a wait for the caller to go away."""

    def __init__(self, receive: Receive, expected: bool) -> None:
        self._receive = receive
        self.expected = expected
        self._read = asyncio.Event()
        if not expected:
            self._read.set()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                raise CallerLeft()
            yield message.get("body", b"")
            if not message.get("more_body", False):
                break
        self._read.set()

    async def left(self) -> None:
        """Returns once the caller disconnects (after its body was read)."""
        await self._read.wait()
        while (await self._receive())["type"] != "http.disconnect":
            pass
