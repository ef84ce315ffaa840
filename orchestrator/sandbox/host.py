"""The seam between the engine and a machine that runs sandboxes (issue 33): everything the engine does to a
sandbox's container, kernel and files goes through the `SandboxHost` the sandbox lives on.

Two kinds exist. The local host (local_host.py) shares this machine's disk with its containers: bind-mounted
folders, a quota'd loop disk, the kernel's IPC sockets in its run dir; the fastest path, and the default. A remote
host (remote_host.py) is any Docker Engine reached over its API alone (tcp:// with TLS client certificates,
ssh://, or a unix:// socket): files go through the engine's exec endpoint, the kernel's channels through an exec
stream, and nothing assumes the container is on this machine. Kubernetes (kubernetes/host.py) is reached the
same way, through the API server's pod exec.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable
from typing import Any, Protocol

from orchestrator.sandbox.hardening import Limits
from orchestrator.sandbox.kernel import Transport
from orchestrator.sandbox.runtime import ContainerState, StopStream
from orchestrator.sandbox.safefs import FileStat, Scan


class SandboxFiles(Protocol):
    """/mnt/data of the sandboxes on one host. Paths are relative to /mnt/data; nothing planted there (a link, a
    FIFO, a folder swapped mid-walk) is ever followed: safefs's rules, wherever the files are."""

    def write(self, sandbox_id: str, path: str, chunks: Iterable[bytes]) -> FileStat:
        """Create or replace a file, owned by the sandbox uid. IsADirectoryError when a folder is in the way,
        OSError (ENOSPC: the sandbox's disk is full), safefs.UnsafePath when the result is not a regular file."""
        ...

    def read(self, sandbox_id: str, path: str) -> tuple[FileStat, Generator[bytes, None, None]]:
        """A regular file's version and bytes; safefs.UnsafePath for anything else or nothing."""
        ...

    def remove(self, sandbox_id: str, path: str) -> bool: ...

    def scan(self, sandbox_id: str, *, max_entries: int, max_depth: int) -> Scan | None:
        """Every regular file under /mnt/data (bounded); None when the files cannot be seen now."""
        ...

    def glance(self, sandbox_id: str, *, max_entries: int, max_depth: int) -> Scan | None:
        """A scan cheap enough for the event loop itself, or None where there is none (a remote host)."""
        ...


class HostRuntime(Protocol):
    """The container verbs the engine uses on any host (runtime.Runtime's, less the local host's own)."""

    @property
    def namespace(self) -> str: ...
    def state(self, sandbox_id: str) -> ContainerState: ...
    def remove(self, sandbox_id: str) -> None: ...
    def list_labels(self) -> list[dict[str, str]]: ...
    def ping(self) -> bool: ...
    def stopped_containers(self) -> StopStream: ...


class SandboxHost(Protocol):
    """One Docker Engine that runs sandboxes, and how their files and kernels are reached on it."""

    @property
    def name(self) -> str:
        """"local", or the endpoint; the label every sandbox on the host carries."""
        ...

    @property
    def watched(self) -> bool:
        """Whether the host watch pings it, and a host that stops answering loses its sandboxes: a machine that
        can die with them (a remote Docker engine). Not the local engine (its restart is the engine watcher's,
        and its files stay on this machine), nor Kubernetes (an API server out of reach leaves its pods running)."""
        ...

    @property
    def runtime(self) -> HostRuntime: ...

    @property
    def files(self) -> SandboxFiles: ...

    def memory_bytes(self) -> int:
        """The engine's memory: what placement divides among sandboxes' limits."""
        ...

    def alive(self) -> bool:
        """Whether the engine answers now, asked with a short timeout."""
        ...

    def prepare(self, sandbox_id: str) -> dict[str, Any]:
        """Make the sandbox's files ready (kept if they exist) and return fresh connection info for its kernel."""
        ...

    def launch(self, sandbox_id: str, *, limits: Limits, labels: dict[str, str], connection: dict[str, Any],
               replace: bool) -> None:
        """Start the sandbox's container, its kernel listening per `connection`; `replace`: its container exists
        and is restarted or replaced."""
        ...

    def reach(self, sandbox_id: str, connection: dict[str, Any]) -> tuple[dict[str, Any], Transport | None]:
        """Open the way to the sandbox's kernel (blocking: a remote host greets the sandbox's relay): the
        connection info jupyter_client connects with here, and what carries it there, if anything."""
        ...

    def seal(self, sandbox_id: str, connection: dict[str, Any]) -> None:
        """Once the kernel is up: take from the sandbox whatever it could use against the server's connection
        (the local run dir); the checks failing raise workspace.UnsafeRunDir."""
        ...

    def saved_connection(self, sandbox_id: str) -> dict[str, Any]:
        """The running kernel's connection info, to reconnect after a server restart; ValueError if unknown."""
        ...

    def release(self, sandbox_id: str) -> None:
        """The container is gone, the files stay: let go of what only a running container needs."""
        ...

    def discard(self, sandbox_id: str) -> None:
        """Delete the sandbox's files (its container is removed through `runtime`)."""
        ...

    def has_files(self, sandbox_id: str) -> bool: ...

    def save_meta(self, sandbox_id: str, meta: dict[str, Any]) -> None:
        """Who the sandbox is, kept with its files, so it is recovered after its container was reclaimed."""
        ...

    def load_metas(self) -> list[dict[str, Any]]: ...

    def claim(self) -> None:
        """Make this server the only one of its namespace on the host, where that can be checked."""
        ...

    def adopt(self, sandbox_id: str) -> None:
        """A running container of a previous server run is taken over: make its files reachable again."""
        ...

    def prune(self, keep: Callable[[str], bool]) -> None:
        """Delete the files of every sandbox of this server's namespace on the host that `keep` (asked as late as
        possible, for each) does not keep."""
        ...

    def close(self) -> None:
        """At server stop: let go of host resources; the containers keep running."""
        ...
