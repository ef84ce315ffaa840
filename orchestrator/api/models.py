"""/v1/models: the models the model endpoint lists (OpenAI's list shape), for a client's menu of model names."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

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
    listed = await services.model.models()  # with its own short timeout and no retries
    return {"object": "list", "data": listed or [
        {"id": DEFAULT_MODEL, "object": "model", "created": 0, "owned_by": "toolshed"}]}
