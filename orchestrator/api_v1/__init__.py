"""The Assistants API v1 face (November 2023, openai 1.2.3 to 1.20.0): the same assistants, threads, messages and
runs as the v2 face, on the same paths, answered to requests that carry `OpenAI-Beta: assistants=v1`.

Requests become v2 service calls; stored objects go out in v1 shapes (orchestrator.api_v1.shapes)."""

from __future__ import annotations

from fastapi import APIRouter

from orchestrator.api_v1 import assistants, runs, threads


def v1_router() -> APIRouter:
    """Every v1 route; include it before the v2 routers (its routes step aside for requests that are not v1)."""
    router = APIRouter()
    router.include_router(assistants.router)
    router.include_router(runs.router)  # before threads: /threads/runs is not a thread id
    router.include_router(threads.router)
    return router
