"""The one table from exceptions to OpenAI's error envelope: {"error": {"message", "type", "param", "code"}}."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from orchestrator import errors
from orchestrator.sandbox import errors as sandbox_errors
from orchestrator.services import projects
from orchestrator.web.disconnect import ClientDisconnected
from retrieval import errors as retrieval_errors

log = logging.getLogger("toolshed.api")


class APIError(Exception):
    """An error raised by a router itself (bad combination of fields, unsupported option, bad key)."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorBody(BaseModel):
    """OpenAI's error envelope, as the OpenAPI document describes every error answer."""

    error: ErrorDetail


# The error answers a /v1 operation may give, documented on every operation (the generated 422 is never sent:
# request validation answers 400).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description} for status, description in (
        (400, "Invalid request"), (401, "Missing or wrong API key"), (404, "No such object (or another project's)"),
        (409, "The object's state forbids it"), (413, "Too large"), (429, "A project limit"),
        (503, "A part the request needs is down, or no sandbox capacity"), (507, "The server's disk is full"))
}


def error_response(status: int, message: str, type: str, param: str | None = None,
                   code: str | None = None) -> JSONResponse:
    body = {"error": {"message": message, "type": type, "param": param, "code": code}}
    return JSONResponse(body, status_code=status)


# Base class -> (HTTP status, error type, default code); a handler is found by the exception's class hierarchy,
# and an exception's own `code` and `param` attributes win over the defaults.
_TABLE: dict[type[Exception], tuple[int, str, str | None]] = {
    errors.NotFound: (404, "invalid_request_error", "not_found"),
    errors.InvalidRequest: (400, "invalid_request_error", "invalid_value"),
    errors.Conflict: (409, "invalid_request_error", "conflict"),
    errors.TooLarge: (413, "invalid_request_error", "too_large"),
    errors.DiskFull: (507, "server_error", "insufficient_storage"),
    retrieval_errors.DiskFull: (507, "server_error", "insufficient_storage"),
    errors.Unavailable: (503, "server_error", "unavailable"),
    retrieval_errors.CatalogUnavailable: (503, "server_error", "unavailable"),
    projects.OverLimit: (429, "insufficient_quota", "project_limit_exceeded"),
    sandbox_errors.SandboxNotFound: (404, "invalid_request_error", "not_found"),
    sandbox_errors.InvalidRequest: (400, "invalid_request_error", None),
    sandbox_errors.SandboxError: (503, "server_error", None),  # the engine's infrastructure: down, full, failed
    retrieval_errors.NotFound: (404, "invalid_request_error", "not_found"),
    retrieval_errors.InvalidRequest: (400, "invalid_request_error", "invalid_value"),
}


def envelope(exc: Exception) -> tuple[int, dict]:
    """(status, OpenAI error body) for an exception of the table, else a 500 that says nothing of the cause.
    Streamed errors use the same body as responses."""
    for kind in type(exc).__mro__:
        if kind in _TABLE:
            status, error_type, code = _TABLE[kind]
            return status, {"error": {"message": str(exc), "type": error_type, "param": getattr(exc, "param", None),
                                      "code": getattr(exc, "code", None) or code}}
    return 500, {"error": {"message": "The server had an error while processing your request.",
                           "type": "server_error", "param": None, "code": None}}


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    first = exc.errors()[0] if exc.errors() else {}
    loc = [str(part) for part in first.get("loc", ())]
    # The first part says where the value came from (body, query string, path); a field may be named "query".
    loc = loc[1:] if loc and loc[0] in ("body", "query", "path", "header") else loc
    param = ".".join(loc) or None
    if first.get("type") == "json_invalid":
        return "We could not parse the JSON body of your request.", None
    message = first.get("msg", "Invalid request.")
    return (f"Invalid value for '{param}': {message}" if param else message), param


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(_: Request, exc: APIError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.type, exc.param, exc.code)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        message, param = _validation_message(exc)
        return error_response(400, message, "invalid_request_error", param, "invalid_value")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}.get(exc.status_code)
        return error_response(exc.status_code, str(exc.detail), "invalid_request_error", None, code)

    def mapped(_: Request, exc: Exception) -> JSONResponse:
        status, body = envelope(exc)
        response = JSONResponse(body, status_code=status)
        if hasattr(exc, "retry_after_s"):  # the openai SDK's retries honour it
            response.headers["Retry-After"] = str(exc.retry_after_s)
        if isinstance(exc, projects.OverLimit):  # a limit, not a rate: the SDK must not retry it
            response.headers["x-should-retry"] = "false"
        return response

    for exc_type in _TABLE:
        app.add_exception_handler(exc_type, mapped)

    @app.exception_handler(ClientDisconnected)
    async def _gone(_: Request, exc: ClientDisconnected) -> JSONResponse:
        # Nobody reads this: nginx's "client closed request", so logs tell it from a server error.
        return error_response(499, "The client closed the request; its work was cancelled.", "invalid_request_error")

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return error_response(500, "The server had an error while processing your request.", "server_error")
