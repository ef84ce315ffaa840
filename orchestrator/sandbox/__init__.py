"""The sandbox engine: hardened Docker containers, each running one Jupyter kernel. No HTTP in here."""

from orchestrator.sandbox.errors import (
    EngineUnavailable,
    InvalidRequest,
    SandboxError,
    SandboxNotFound,
)
from orchestrator.sandbox.manager import SandboxManager
from orchestrator.sandbox.models import (
    Execution,
    ExecutionError,
    ImageOutput,
    Sandbox,
    SandboxSpec,
    TextOutput,
)

__all__ = [
    "EngineUnavailable",
    "Execution",
    "ExecutionError",
    "ImageOutput",
    "InvalidRequest",
    "Sandbox",
    "SandboxError",
    "SandboxManager",
    "SandboxNotFound",
    "SandboxSpec",
    "TextOutput",
]
