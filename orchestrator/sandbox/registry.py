"""The engine's mutable view of each sandbox (`LiveSandbox`), and how a sandbox is written to and read back from
its container's labels (so a restarted server can recover it)."""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass, field

from orchestrator.sandbox.errors import SandboxNotFound
from orchestrator.sandbox.kernel import KernelSession
from orchestrator.sandbox.models import Sandbox


@dataclass
class LiveSandbox:
    """One sandbox as the engine tracks it while the server runs."""

    sandbox: Sandbox
    # Cells on one sandbox never interleave: each holds this lock from its start to its artifacts' registration.
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    session: KernelSession | None = None
    # Why the kernel must be restarted before its next cell; None while it is healthy.
    needs_restart: str | None = None
    # A restart the user has not been told about yet (e.g. the container died while idle).
    unreported_reset: str | None = None
    interrupt_requested: bool = False
    # Monotonic times: the last cell's end (least recently used goes first under the cap) and the container start.
    last_used: float = field(default_factory=time.monotonic)
    started: float = field(default_factory=time.monotonic)

    def close_session(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None


class Registry:
    """The sandboxes this server knows, by id."""

    def __init__(self) -> None:
        self._live: dict[str, LiveSandbox] = {}

    def get(self, sandbox_id: str) -> LiveSandbox:
        live = self._live.get(sandbox_id)
        if live is None:
            raise SandboxNotFound(sandbox_id)
        return live

    def holds(self, live: LiveSandbox) -> bool:
        """Whether `live` is still the registered sandbox of its id (not deleted or replaced meanwhile)."""
        return self._live.get(live.sandbox.id) is live

    def __contains__(self, sandbox_id: str) -> bool:
        return sandbox_id in self._live

    def add(self, live: LiveSandbox) -> None:
        self._live[live.sandbox.id] = live

    def pop(self, sandbox_id: str) -> LiveSandbox:
        live = self._live.pop(sandbox_id, None)
        if live is None:
            raise SandboxNotFound(sandbox_id)
        return live

    def all(self) -> list[LiveSandbox]:
        return list(self._live.values())

    def ids(self) -> list[str]:
        return sorted(self._live)


def new_sandbox(memory_limit: str, labels: dict[str, str] | None = None) -> Sandbox:
    now_ns = time.time_ns()
    return Sandbox(id=f"cntr_{secrets.token_hex(16)}", name="", created_at=now_ns // 1_000_000_000,
                   memory_limit=memory_limit, last_active_at=now_ns // 1_000_000_000, labels=labels or {},
                   created_ns=now_ns)


def labels_for(sandbox: Sandbox) -> dict[str, str]:
    return {
        "name": sandbox.name,
        "created_at": str(sandbox.created_at),
        "created_ns": str(sandbox.created_ns),
        "memory_limit": sandbox.memory_limit,
        "expires_after_minutes": str(sandbox.expires_after_minutes),
        **{f"meta.{k}": v for k, v in sandbox.labels.items()},
    }


def sandbox_from_labels(labels: dict[str, str]) -> Sandbox:
    created = int(labels.get("created_at", "0"))
    return Sandbox(
        id=labels["id"],
        name=labels.get("name", ""),
        created_at=created,
        memory_limit=labels.get("memory_limit", "1g"),
        last_active_at=created,
        labels={k.removeprefix("meta."): v for k, v in labels.items() if k.startswith("meta.")},
        created_ns=int(labels.get("created_ns", created * 1_000_000_000)),
        expires_after_minutes=int(labels.get("expires_after_minutes", "20")),
    )
