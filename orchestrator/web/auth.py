"""The caller of every HTTP face: the service container a request reaches, and the project its bearer key acts for.

All are `async def` although none awaits: FastAPI runs a plain `def` dependency in its thread pool, a thread hop
per dependency per request that showed up as ~6% of the server's time on a trivial execute."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from fastapi import Depends, Request

from orchestrator.services.container import Services
from orchestrator.services.keys import KeyRing
from orchestrator.services.projects import Caller, Owners
from orchestrator.web.errors import APIError


async def services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(services)]


async def caller(request: Request, services: ServicesDep) -> Caller:
    """The project a request acts for, from its bearer key; a 401 without a valid one. With no key anywhere the
    server is one trusted user's (on loopback only): an admin of the default project."""
    # The key gate (web/gate.py) has already looked up the key of a request with a body.
    found = request.scope.get("state", {}).get("caller") or bearer_caller(services.keys, request.headers)
    if found is None:
        raise APIError(401, "Incorrect API key provided.", code="invalid_api_key")
    return found


def bearer_caller(keys: KeyRing, headers: Mapping[str, str]) -> Caller | None:
    """The caller an `Authorization: Bearer` key (and an admin's `OpenAI-Project`) names; None without a valid
    key. Open access (no key anywhere) is an admin of the default project."""
    if keys.open:
        return Caller(admin=True)
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return keys.caller(token, headers.get("openai-project")) if scheme.lower() == "bearer" else None


CallerDep = Annotated[Caller, Depends(caller)]


async def owners(services: ServicesDep) -> Owners:
    return services.owners


OwnersDep = Annotated[Owners, Depends(owners)]
