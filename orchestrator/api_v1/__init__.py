"""The Assistants API v1 face (November 2023, openai 1.2.3 to 1.20.0): the same assistants, threads, messages and
runs as the v2 face, on the same paths, answered to requests that carry `OpenAI-Beta: assistants=v1`.

Requests become v2 service calls; stored objects go out in v1 shapes (orchestrator.api_v1.shapes)."""

from __future__ import annotations

from fastapi import APIRouter

from orchestrator.api_v1 import assistants, runs, threads
from orchestrator.api_v1.route import V1Route
from orchestrator.errors import NotFound

_METHODS = ["GET", "POST", "DELETE", "PUT", "PATCH"]


async def _not_in_v1(rest: str) -> None:
    raise NotFound("This operation is not part of the Assistants API v1; send OpenAI-Beta: assistants=v2 for it.")


def v1_router() -> APIRouter:
    """Every v1 route; include it before the v2 routers (its routes step aside for requests that are not v1).
    A v1 request for an operation v1 lacks (a message's DELETE, say) meets the last two routes, a 404, rather
    than the v2 route on the same path."""
    router = APIRouter()
    router.include_router(assistants.router)
    router.include_router(runs.router)  # before threads: /threads/runs is not a thread id
    router.include_router(threads.router)
    for prefix in ("/assistants", "/threads"):
        router.add_api_route(prefix + "{rest:path}", _not_in_v1, methods=_METHODS, route_class_override=V1Route,
                             include_in_schema=False)
    return router
