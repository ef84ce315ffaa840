"""A cap on request bodies other than file uploads: what an assistant server sends is the model's to choose, and
a 300 MB `code` string would otherwise be read whole, parsed and sent on to a kernel. Uploads (multipart) have
their own limit, `max_upload_bytes`. Plain ASGI, so the hot routes pay one function call for it."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orchestrator.web.errors import error_response


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _header(scope, b"content-type").startswith(b"multipart/"):
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await error_response(413, self._message(), "invalid_request_error", None,
                                 "request_too_large")(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            # A body without a length (chunked) is counted as it arrives. FastAPI passes an HTTPException raised
            # while it reads the body through unchanged, so the client gets this 413, not a parse error.
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise HTTPException(413, self._message())
            return message

        await self.app(scope, limited, send)

    def _message(self) -> str:
        return (f"The request body is over the {self.max_bytes}-byte limit for JSON requests "
                "(TOOLSHED_MAX_JSON_BODY_BYTES); send files through /v1/files instead.")


def _header(scope: Scope, name: bytes) -> bytes:
    for key, value in scope["headers"]:
        if key == name:
            return value
    return b""
