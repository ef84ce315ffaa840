"""Infrastructure failures of the sandbox engine. Failures *inside user code* are data (see models.Execution).

    SandboxError
    ├── SandboxNotFound      unknown or deleted sandbox id
    ├── InvalidRequest       arguments the engine cannot honour (bad memory limit, bad timeout)
    ├── EngineUnavailable    Docker is not reachable, or the sandbox image is missing
    ├── SandboxStartFailed   a container or its kernel did not come up
    └── CapacityExhausted    every sandbox slot stayed busy for the whole bounded wait
"""

from __future__ import annotations


class SandboxError(Exception):
    """Base of every engine failure the API maps to an HTTP error."""


class SandboxNotFound(SandboxError):
    def __init__(self, sandbox_id: str) -> None:
        super().__init__(f"No container found with id '{sandbox_id}'.")
        self.sandbox_id = sandbox_id


class InvalidRequest(SandboxError):
    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class EngineUnavailable(SandboxError):
    code = "engine_unavailable"
    retry_after_s = 5


class SandboxStartFailed(SandboxError):
    code = "sandbox_start_failed"


class CapacityExhausted(SandboxError):
    code = "sandbox_capacity"
    retry_after_s = 5
