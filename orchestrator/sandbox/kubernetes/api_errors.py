"""The Kubernetes client's failures as the engine's errors, in one place (backend.py's calls)."""

from __future__ import annotations

import json

import urllib3.exceptions
from kubernetes.client.exceptions import ApiException

from orchestrator.sandbox.errors import EngineUnavailable, SandboxNotFound

UNREACHABLE = (urllib3.exceptions.HTTPError, OSError)


def _message(exc: ApiException) -> str:
    """The API server's own words: the Status object's message, else the HTTP reason."""
    try:
        return str(json.loads(exc.body or "{}").get("message") or exc.reason)
    except (ValueError, AttributeError):
        return str(exc.reason)


def translate(exc: Exception, sandbox_id: str | None = None) -> Exception:
    """Maps the kubernetes client's exceptions to the engine's tree, in one place."""
    if isinstance(exc, ApiException):
        if exc.status == 404 and sandbox_id is not None:
            return SandboxNotFound(sandbox_id)
        if exc.status in (401, 403):
            return EngineUnavailable(f"The Kubernetes API refused Toolshed's service account ({exc.status}): "
                                     f"{_message(exc)}. See the Role in deploy/kubernetes/.")
        if exc.status == 404:
            return EngineUnavailable(f"The Kubernetes API has no such resource ({_message(exc)}); are the "
                                     "agent-sandbox CRDs and controller installed?")
        return EngineUnavailable(f"Kubernetes API error {exc.status}: {_message(exc)}")
    if isinstance(exc, UNREACHABLE):
        return EngineUnavailable(f"The Kubernetes API is not reachable; retry shortly. ({exc})")
    return exc
