"""Requests for a container that another replica holds, forwarded to that replica (services/sandbox_homes.py).

A sandbox runs on the Docker Engine of the replica that made it; its kernel's memory cannot move. So a request
under /v1/containers/{id} or /jupyter/api/kernels/{id} that reaches another replica is passed on, body and answer
streamed, with the caller's own key: the holding replica checks it as it checks any request. Only a request whose
key is valid here is passed on, and a passed-on request is never passed on again. A holder that does not answer
(it stopped or died) gets a 503 saying so. The Jupyter kernel channels (a websocket) are not forwarded.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Sequence

import httpx
from starlette.datastructures import Headers, QueryParams
from starlette.types import ASGIApp, Receive, Scope, Send

from orchestrator.services.container import Services
from orchestrator.web.gate import Door, door_of, shaped_error

FORWARDED = "x-toolshed-forwarded"
_CONTAINER_PATHS = re.compile(r"^/(?:v1/containers|jupyter/api/kernels)/([A-Za-z0-9_-]+)")
# Headers of one connection, not of the request (RFC 9110 section 7.6.1), and the host the holder names itself.
_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "host"}


class Forwarder:
    def __init__(self, app: ASGIApp, doors: Sequence[Door], services: Callable[[], Services]) -> None:
        self.app, self.doors, self.services = app, doors, services
        # No read timeout: an execution or an event stream lasts as long as the holder takes to answer it.
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(None, connect=5.0))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        home = self._home(scope) if scope["type"] == "http" else None
        if home is None:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        door = door_of(self.doors, scope["path"])
        if door is None or door.authenticate(self.services(), headers, QueryParams(scope["query_string"])) is None:
            await self.app(scope, receive, send)  # the route answers a bad key in its own shape
            return
        await self._forward(home, scope, headers, receive, send)

    def _home(self, scope: Scope) -> str | None:
        match = _CONTAINER_PATHS.match(scope["path"])
        if match is None or FORWARDED in Headers(scope=scope):
            return None
        return self.services().sandbox_homes.elsewhere(match.group(1))

    async def _forward(self, home: str, scope: Scope, headers: Headers, receive: Receive, send: Send) -> None:
        query = scope["query_string"].decode("latin-1")
        url = f"{home}{scope['path']}" + (f"?{query}" if query else "")
        sent = [(k, v) for k, v in headers.items() if k not in _HOP] + [(FORWARDED, "1")]
        request = self._client.build_request(scope["method"], url, headers=sent, content=_body(receive))
        try:
            answer = await self._client.send(request, stream=True)
        except httpx.HTTPError:
            message = (f"The replica holding this container ({home}) does not answer; it may have stopped, and "
                       "its sandboxes with it. Create a new container.")
            await shaped_error(self.doors, scope, 503, message, "unavailable")(scope, receive, send)
            return
        try:
            await send({"type": "http.response.start", "status": answer.status_code,
                        "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in answer.headers.multi_items()
                                    if k.lower() not in _HOP]})
            async for chunk in answer.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await answer.aclose()


async def _body(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return
