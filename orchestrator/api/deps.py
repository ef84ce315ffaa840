"""Request-scoped access to the engines held by the app, and the API-key check."""

from __future__ import annotations

import secrets

from fastapi import Request

from orchestrator.api.errors import APIError
from orchestrator.config import Settings
from orchestrator.sandbox import EngineUnavailable, SandboxManager
from orchestrator.storage import FileStore


def settings(request: Request) -> Settings:
    return request.app.state.settings


def manager(request: Request) -> SandboxManager:
    engine = request.app.state.manager
    if engine is None:
        raise EngineUnavailable(request.app.state.engine_problem or "The sandbox engine is not running.")
    return engine


def files(request: Request) -> FileStore:
    return request.app.state.files


def require_api_key(request: Request) -> None:
    keys: list[str] = request.app.state.settings.api_keys
    if not keys:
        return
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not any(secrets.compare_digest(token, key) for key in keys):
        raise APIError(401, "Incorrect API key provided.", code="invalid_api_key")
