"""The one table from exceptions to OpenAI's error envelope: {"error": {"message", "type", "param", "code"}}."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from orchestrator.api.disconnect import ClientDisconnected
from orchestrator.container_files import ContainerFileError, ContainerFileNotFound
from orchestrator.sandbox.errors import (
    CapacityExhausted,
    EngineUnavailable,
    InvalidRequest,
    SandboxNotFound,
    SandboxStartFailed,
)
from orchestrator.storage import FileNotFound, FileTooLarge
from orchestrator.tools.router import ToolCallError
from retrieval import errors as retrieval_errors

log = logging.getLogger("toolshed.api")


class APIError(Exception):
    """An error raised by a router itself (bad combination of fields, unsupported option, bad key)."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code


def error_response(status: int, message: str, type: str, param: str | None = None,
                   code: str | None = None) -> JSONResponse:
    body = {"error": {"message": message, "type": type, "param": param, "code": code}}
    return JSONResponse(body, status_code=status)


# exception class -> (HTTP status, error type, code)
_TABLE: dict[type[Exception], tuple[int, str, str | None]] = {
    SandboxNotFound: (404, "invalid_request_error", "not_found"),
    FileNotFound: (404, "invalid_request_error", "not_found"),
    ContainerFileNotFound: (404, "invalid_request_error", "not_found"),
    ContainerFileError: (400, "invalid_request_error", "invalid_file"),
    InvalidRequest: (400, "invalid_request_error", None),
    ToolCallError: (400, "invalid_request_error", None),
    retrieval_errors.StoreNotFound: (404, "invalid_request_error", "not_found"),
    retrieval_errors.StoreFileNotFound: (404, "invalid_request_error", "not_found"),
    retrieval_errors.BatchNotFound: (404, "invalid_request_error", "not_found"),
    retrieval_errors.InvalidRequest: (400, "invalid_request_error", "invalid_value"),
    FileTooLarge: (413, "invalid_request_error", "file_too_large"),
    EngineUnavailable: (503, "server_error", "engine_unavailable"),
    SandboxStartFailed: (503, "server_error", "sandbox_start_failed"),
    CapacityExhausted: (503, "server_error", "sandbox_capacity"),
}


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    first = exc.errors()[0] if exc.errors() else {}
    loc = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path")]
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

    for exc_type, (status, kind, code) in _TABLE.items():
        def handler(_: Request, exc: Exception, status: int = status, kind: str = kind,
                    code: str | None = code) -> JSONResponse:
            response = error_response(status, str(exc), kind, getattr(exc, "param", None),
                                      getattr(exc, "code", code))
            if hasattr(exc, "retry_after_s"):  # the openai SDK's retries honour it
                response.headers["Retry-After"] = str(exc.retry_after_s)
            return response
        app.add_exception_handler(exc_type, handler)

    @app.exception_handler(ClientDisconnected)
    async def _gone(_: Request, exc: ClientDisconnected) -> JSONResponse:
        # Nobody reads this: nginx's "client closed request", so logs tell it from a server error.
        return error_response(499, "The client closed the request; its work was cancelled.", "invalid_request_error")

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return error_response(500, "The server had an error while processing your request.", "server_error")
