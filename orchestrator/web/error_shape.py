"""Errors in a wire's own shape: a route class that answers what the OpenAI face would answer (same statuses, same
messages), in the body that wire's clients read."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from orchestrator.web.errors import APIError, envelope

# (status, message, OpenAI's error code) -> the wire's error body
ErrorBody = Callable[[int, str, str | None], dict[str, Any]]


def shaped_route(body: ErrorBody) -> type[APIRoute]:
    class ShapedRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def shaped(request: Request) -> Response:
                try:
                    return await handler(request)
                except APIError as exc:
                    status, message, code = exc.status, exc.message, exc.code
                except RequestValidationError as exc:
                    first = exc.errors()[0] if exc.errors() else {}
                    where = ".".join(str(part) for part in first.get("loc", ())[1:])
                    status, code = 400, "invalid_value"
                    message = f"Invalid request: {where + ': ' if where else ''}{first.get('msg', 'bad value')}"
                except Exception as exc:
                    status, openai_body = envelope(exc)
                    if status == 500:
                        raise
                    message, code = openai_body["error"]["message"], openai_body["error"]["code"]
                return JSONResponse(body(status, message, code), status_code=status)

            return shaped

    return ShapedRoute
