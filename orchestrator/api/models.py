"""/v1/models: the models the model endpoint lists (OpenAI's list shape), for a client's menu of model names."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from orchestrator.agent.chat import Endpoint, ModelClient, endpoint_map
from orchestrator.web.auth import ServicesDep

router = APIRouter(tags=["models"])
# Named when nothing lists a model (no endpoint, an unreachable one, or one without /models, as some local
# servers are): a name most OpenAI-compatible servers answer to, and the user may type any other.
DEFAULT_MODEL = "gpt-4o-mini"


class ModelObject(BaseModel):
    id: str
    object: str = "model"
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: str = "list"
    data: list[ModelObject]


@router.get("/models", response_model=ModelList)
async def list_models(services: ServicesDep) -> dict[str, Any]:
    """The endpoint's own list passed through, plus the TOOLSHED_MODEL_MAP names, or the default alone."""
    settings = services.settings
    # A client of its own, closed at once: the menu is asked for once per page load, and the run engine's
    # client (with its long timeout and retries) stays the run engine's.
    client = ModelClient(Endpoint(settings.model_base_url, settings.model_api_key) if settings.model_base_url
                         else None, endpoint_map(settings.model_map))
    try:
        listed = await client.models()
    finally:
        await client.close()
    return {"object": "list", "data": listed or [
        {"id": DEFAULT_MODEL, "object": "model", "created": 0, "owned_by": "toolshed"}]}
