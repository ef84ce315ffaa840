"""The key check every request with a body passes before a byte of that body is read: FastAPI reads (and spools
to disk) a request's whole body before any dependency runs, so a key checked only in a dependency would let a
stranger make the server write 200 MB. Each face says where it lives, how its clients give their key and how its
errors look (a `Door`); the face's own dependency still checks the key again for requests without a body."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi.responses import JSONResponse
from starlette.datastructures import Headers, QueryParams
from starlette.types import ASGIApp, Receive, Scope, Send

from orchestrator import errors
from orchestrator.services.container import Services
from orchestrator.services.projects import Caller
from orchestrator.web.error_shape import ErrorBody

# Who a request acts for, in the face's own terms; None without a valid key.
Authenticate = Callable[[Services, Headers, QueryParams], object | None]


def openai_error(status: int, message: str, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}


@dataclass(frozen=True)
class Refusal:
    status: int
    message: str
    code: str | None = None


@dataclass(frozen=True)
class Door:
    """One face's entrance: its path prefix, its key check and the answer to a request without a valid key."""

    prefix: str
    authenticate: Authenticate
    refusal: Refusal
    error_body: ErrorBody = openai_error


def door_of(doors: Sequence[Door], path: str) -> Door | None:
    return next((door for door in doors if path.startswith(door.prefix)), None)


def shaped_error(doors: Sequence[Door], scope: Scope, status: int, message: str, code: str | None) -> JSONResponse:
    """An error answer in the shape of the face `scope` is for (OpenAI's for a path no face claims)."""
    door = door_of(doors, scope["path"])
    return JSONResponse((door.error_body if door else openai_error)(status, message, code), status_code=status)


def has_body(headers: Headers) -> bool:
    return headers.get("content-length", "0") != "0" or "transfer-encoding" in headers


class KeyGate:
    """Refuses a request with a body and no valid key for its face, without reading the body. An accepted
    `Caller` rides in the request's state (`caller`), so web/auth.py need not look the key up again."""

    def __init__(self, app: ASGIApp, doors: Sequence[Door], services: Callable[[], Services]) -> None:
        self.app, self.doors, self.services = app, doors, services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        door = door_of(self.doors, scope["path"]) if scope["type"] == "http" else None
        headers = Headers(scope=scope) if door is not None else Headers()
        if door is None or not has_body(headers):
            await self.app(scope, receive, send)
            return
        try:
            caller = door.authenticate(self.services(), headers, QueryParams(scope["query_string"]))
        except errors.InvalidRequest:
            # A valid admin key naming a malformed project: the face's own dependency answers that, in its shape.
            await self.app(scope, receive, send)
            return
        if caller is None:
            refusal = door.refusal
            answer = JSONResponse(door.error_body(refusal.status, refusal.message, refusal.code),
                                  status_code=refusal.status)
            await answer(scope, receive, send)
            return
        if isinstance(caller, Caller):  # the OpenAI face's; other faces have callers of their own kinds
            scope.setdefault("state", {})["caller"] = caller
        await self.app(scope, receive, send)
