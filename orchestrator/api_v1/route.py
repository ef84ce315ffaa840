"""What the v1 face's routers share: a route that answers only requests saying `OpenAI-Beta: assistants=v1`, the
project check of ids in paths and bodies, list pages, and the services a request reaches."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.routing import APIRoute
from starlette.routing import Match
from starlette.types import Scope

from orchestrator.assistants.managed_stores import ManagedStores
from orchestrator.assistants.store import ObjectNotFound
from orchestrator.services.projects import Caller, Owners
from orchestrator.services.storage import FileNotFound
from orchestrator.web.auth import CallerDep, OwnersDep

V1 = b"assistants=v1"


def says_v1(scope: Scope) -> bool:
    """Whether the request's `OpenAI-Beta` header (a comma-separated list) asks for assistants=v1."""
    for name, value in scope.get("headers", ()):
        if name == b"openai-beta" and V1 in (part.strip() for part in value.lower().split(b",")):
            return True
    return False


class V1Route(APIRoute):
    """A route on the same path as its v2 twin, chosen only when the request asks for v1: to every other request
    it is not there, so the router goes on to the v2 route."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] == "http" and not says_v1(scope):
            return Match.NONE, {}
        return super().matches(scope)


_MISSING: dict[str, Callable[[str], Exception]] = {
    "file_id": FileNotFound,
    "assistant_id": lambda object_id: ObjectNotFound("assistants", object_id),
    "thread_id": lambda object_id: ObjectNotFound("threads", object_id),
}


def owned_path(*params: str) -> Any:
    """A router dependency: each of the path's `params` ids must be the caller's project's; another project's
    is answered as an unknown one (its kind's 404)."""

    async def check(request: Request, caller: CallerDep, owners: OwnersDep) -> None:
        for param in params:
            value = request.path_params.get(param)
            if value is not None and not owners.sees(caller, value):
                raise _MISSING[param](value)

    return Depends(check)


def require(caller: Caller, owners: Owners, param: str, ids: Iterable[str]) -> None:
    """Every id a request body names (files, assistants) must be the caller's project's."""
    for object_id in ids:
        if not owners.sees(caller, object_id):
            raise _MISSING[param](object_id)


def page_of(items: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    return {"object": "list", "data": items, "first_id": items[0]["id"] if items else None,
            "last_id": items[-1]["id"] if items else None, "has_more": has_more}


def paginate(items: list[dict[str, Any]], limit: int, order: str, after: str | None,
             before: str | None) -> dict[str, Any]:
    """A list page over objects held in memory (oldest first), with the stored lists' cursor rules: a cursor that
    names no item gives an empty page, so 1.2.3's `after=<last id>` loop ends."""
    ordered = items if order == "asc" else items[::-1]
    ids = [item["id"] for item in ordered]
    for cursor, forward in ((after, True), (before, False)):
        if cursor is None:
            continue
        if cursor not in ids:
            return page_of([], False)
        at = ids.index(cursor)
        ordered, ids = (ordered[at + 1:], ids[at + 1:]) if forward else (ordered[:at], ids[:at])
    chosen = ordered[-limit:] if before is not None and after is None else ordered[:limit]
    return page_of(chosen, len(ordered) > limit)


async def managed_stores(request: Request) -> ManagedStores:
    return ManagedStores(request.app.state.services.assistants)


ManagedStoresDep = Annotated[ManagedStores, Depends(managed_stores)]
