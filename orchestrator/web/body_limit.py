"""Caps on request bodies, counted as they stream in so an over-limit body is refused after at most the limit was
read (FastAPI would otherwise read it whole: a JSON body into memory, a multipart one into a temp file).

JSON and other bodies: what an assistant server sends is the model's to choose, and a 300 MB `code` string would
otherwise be parsed and sent on to a kernel (TOOLSHED_MAX_JSON_BODY_BYTES). Multipart uploads: the file limit
(TOOLSHED_MAX_UPLOAD_BYTES) plus room for the form's own framing and fields. Plain ASGI, so the hot routes pay one
function call for it."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orchestrator.web.gate import Door, shaped_error

# The multipart framing around a file, and the small fields beside it (`purpose`), are not the file's bytes.
FORM_OVERHEAD = 1 << 20


class BodyLimit:
    def __init__(self, app: ASGIApp, json_bytes: int, upload_bytes: int, doors: Sequence[Door] = ()) -> None:
        self.app, self.json_bytes, self.upload_bytes, self.doors = app, json_bytes, upload_bytes, doors

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        upload = headers.get("content-type", "").startswith("multipart/")
        limit = self.upload_bytes + FORM_OVERHEAD if upload else self.json_bytes
        message = self._message(upload)
        # The code an upload the route itself finds too large has (services/storage.py's FileTooLarge).
        code = "file_too_large" if upload else "request_too_large"
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await shaped_error(self.doors, scope, 413, message, code)(scope, receive, send)
            return
        received, over = 0, False

        async def limited() -> Message:
            # A body without a length (chunked) is counted as it arrives. FastAPI passes an HTTPException raised
            # while it reads the body through unchanged, so reading stops here and the client gets a 413.
            nonlocal received, over
            chunk = await receive()
            received += len(chunk.get("body", b""))
            if received > limit:
                over = True
                raise HTTPException(413, message)
            return chunk

        async def reshaped(reply: Message) -> None:
            # Whatever the app answers once the cap is hit becomes the 413 in the shape of the request's face.
            if not over:
                await send(reply)
            elif reply["type"] == "http.response.start":
                await shaped_error(self.doors, scope, 413, message, code)(scope, receive, send)

        await self.app(scope, limited, reshaped)

    def _message(self, upload: bool) -> str:
        if upload:
            return f"File exceeds the maximum upload size of {self.upload_bytes} bytes (TOOLSHED_MAX_UPLOAD_BYTES)."
        return (f"The request body is over the {self.json_bytes}-byte limit for JSON requests "
                "(TOOLSHED_MAX_JSON_BODY_BYTES); send files through /v1/files instead.")
