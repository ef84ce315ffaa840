"""Value objects the sandbox engine returns. Frozen dataclasses; the wire format lives in orchestrator.api."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ExecutionStatus = Literal["completed", "failed", "timed_out", "interrupted"]


@dataclass(frozen=True)
class SandboxSpec:
    """What a caller asks for when creating a sandbox."""

    name: str = ""
    memory_limit: str = "1g"
    labels: dict[str, str] = field(default_factory=dict)
    # Idle time after which the container and kernel are reclaimed (files stay; the next call rehydrates).
    expires_after_minutes: int = 20


@dataclass(frozen=True)
class Sandbox:
    """A sandbox as the engine knows it: one container plus its kernel."""

    id: str
    name: str
    created_at: int
    memory_limit: str
    last_active_at: int
    labels: dict[str, str] = field(default_factory=dict)
    # Orders sandboxes created within the same second (created_at has one-second resolution).
    created_ns: int = 0
    expires_after_minutes: int = 20
    # "running": container and kernel up (or starting); "expired": reclaimed while idle, files kept.
    status: str = "running"


@dataclass(frozen=True)
class TextOutput:
    """Text the kernel produced: a stdout/stderr stream, a cell result, or a rendered traceback."""

    kind: Literal["stdout", "stderr", "result", "error", "notice"]
    text: str


@dataclass(frozen=True)
class ImageOutput:
    """An image the kernel displayed (a matplotlib figure, a PIL image, ...)."""

    mime_type: str
    data: bytes


Output = TextOutput | ImageOutput


@dataclass(frozen=True)
class ExecutionError:
    """An error raised by the user's code, or the reason the kernel stopped (OOM, death, timeout)."""

    name: str
    value: str
    traceback: tuple[str, ...] = ()


@dataclass(frozen=True)
class Artifact:
    """A file under /mnt/data that a cell created or changed, as registered by the ArtifactSink."""

    path: str
    bytes: int
    container_file_id: str
    # The exported copy (a Files-API file); None when it could not be exported, and `error` says why.
    file_id: str | None
    error: str | None = None


@dataclass(frozen=True)
class Collected:
    """What the ArtifactSink registered after a cell."""

    artifacts: tuple[Artifact, ...] = ()
    # Changed files registered but not listed: past the per-cell listing cap.
    omitted: int = 0
    # False when /mnt/data holds more entries than one scan visits, so some files were not looked at.
    complete: bool = True


@dataclass(frozen=True)
class Execution:
    """The result of running one cell. Failures of user code are reported here, never raised."""

    id: str
    sandbox_id: str
    status: ExecutionStatus
    outputs: tuple[Output, ...]
    error: ExecutionError | None
    duration_ms: int
    kernel_restarted: bool = False
    truncated_bytes: int = 0
    artifacts: tuple[Artifact, ...] = ()
    artifacts_omitted: int = 0
    artifacts_complete: bool = True
