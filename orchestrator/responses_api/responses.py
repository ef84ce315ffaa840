"""/v1/responses: create (whole, streamed as Server-Sent Events, or in the background), retrieve, delete, cancel,
and a response's own input items (openai.types.responses.Response)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.sse import EventSourceResponse, format_sse_event

from orchestrator.db import PageRequest
from orchestrator.errors import NotFound
from orchestrator.responses.conversations import listing
from orchestrator.responses.service import Responses
from orchestrator.responses.shapes import present
from orchestrator.responses_api.params import IncludeBrackets, IncludePlain, Limit, Order, included
from orchestrator.responses_api.schemas import ResponseCreate
from orchestrator.web.auth import CallerDep, OwnersDep, ServicesDep


async def responses(services: ServicesDep) -> Responses:
    return services.responses


ResponsesDep = Annotated[Responses, Depends(responses)]


async def owned(response_id: str, caller: CallerDep, owners: OwnersDep) -> str:
    """The path's response, if it is the caller's: another project's is as unknown as a missing one."""
    if not owners.sees(caller, response_id):
        raise NotFound(f"Response with id '{response_id}' not found.")
    return response_id


OwnedId = Annotated[str, Depends(owned)]
router = APIRouter(prefix="/responses", tags=["responses"])
# A Response (openai.types.responses.Response), or with `stream: true` its events as Server-Sent Events: each an
# `event:` line naming the event's type and a `data:` line holding the event as JSON.
CREATED: dict[int | str, dict[str, Any]] = {200: {"description": "A Response, or its event stream", "content": {
    "application/json": {"schema": {"type": "object"}},
    "text/event-stream": {"schema": {"type": "object", "required": ["data"],
                                     "properties": {"event": {"type": "string"}, "data": {"type": "string"}}}}}}}


@router.post("", response_model=None, responses=CREATED)
async def create_response(body: ResponseCreate, service: ResponsesDep,
                          caller: CallerDep) -> dict[str, Any] | EventSourceResponse:
    if not body.stream:
        return await service.create(body.request(), caller)
    queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
    await service.create(body.request(), caller, queue)
    return _stream(queue)


def _stream(queue: asyncio.Queue[dict[str, Any] | None]) -> EventSourceResponse:
    """Each event as `event: <type>` and its JSON, as OpenAI sends them; the stream ends after the last one (no
    [DONE]). A client that leaves stops its stream only: the response goes on and is stored."""

    async def frames() -> AsyncIterator[bytes]:
        while (event := await queue.get()) is not None:
            yield format_sse_event(event=event["type"], data_str=json.dumps(event))

    return EventSourceResponse(frames(), headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.get("/{response_id}", response_model=None)
async def retrieve_response(response_id: OwnedId, service: ResponsesDep, include_brackets: IncludeBrackets = None,
                            include: IncludePlain = None) -> dict[str, Any]:
    return service.retrieve(response_id, included(include_brackets, include))


@router.delete("/{response_id}", response_model=None)
async def delete_response(response_id: OwnedId, service: ResponsesDep) -> dict[str, Any]:
    await service.delete(response_id)
    return {"id": response_id, "object": "response.deleted", "deleted": True}


@router.post("/{response_id}/cancel", response_model=None)
async def cancel_response(response_id: OwnedId, service: ResponsesDep) -> dict[str, Any]:
    return await service.cancel(response_id)


@router.get("/{response_id}/input_items", response_model=None)
async def list_input_items(response_id: OwnedId, service: ResponsesDep, limit: Limit = 20, order: Order = "desc",
                           after: str | None = None, before: str | None = None,
                           include_brackets: IncludeBrackets = None, include: IncludePlain = None) -> dict[str, Any]:
    shown = included(include_brackets, include)
    items, more = service.store.input_page(response_id, PageRequest(limit, order, after, before))
    return listing(present(items, shown), more)

