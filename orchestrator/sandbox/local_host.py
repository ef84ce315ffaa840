"""The local host: sandboxes on this machine's Docker Engine, sharing its disk (see workspace.py). Files are read
and written in the host folder with safefs; the kernel is reached over IPC sockets in the sandbox's run dir."""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Iterable
from typing import Any

from orchestrator.sandbox import safefs
from orchestrator.sandbox.hardening import Limits
from orchestrator.sandbox.kernel import Transport, new_connection_info
from orchestrator.sandbox.runtime import CONTAINER_RUN_DIR, Runtime
from orchestrator.sandbox.workspace import WorkspaceStore

LOCAL = "local"


class LocalFiles:
    """/mnt/data as host folders (a quota'd loop disk each, where the server runs as root)."""

    def __init__(self, workspaces: WorkspaceStore) -> None:
        self._workspaces = workspaces

    def write(self, sandbox_id: str, path: str, chunks: Iterable[bytes]) -> safefs.FileStat:
        self._workspaces.write_data(sandbox_id, path, chunks)
        fd, info = safefs.open_regular(self._workspaces.data_dir(sandbox_id), path)
        os.close(fd)
        return _stat_of(info)

    def read(self, sandbox_id: str, path: str) -> tuple[safefs.FileStat, Generator[bytes, None, None]]:
        fd, info = safefs.open_regular(self._workspaces.data_dir(sandbox_id), path)
        return _stat_of(info), safefs.read_chunks(fd)

    def remove(self, sandbox_id: str, path: str) -> bool:
        return safefs.remove_file(self._workspaces.data_dir(sandbox_id), path)

    def scan(self, sandbox_id: str, *, max_entries: int, max_depth: int) -> safefs.Scan | None:
        data_dir = self._workspaces.data_dir(sandbox_id)
        if not data_dir.is_dir():  # workspace gone or not mounted: seeing nothing must not delete every row
            return None
        return safefs.scan(data_dir, max_entries=max_entries, max_depth=max_depth)

    def glance(self, sandbox_id: str, *, max_entries: int, max_depth: int) -> safefs.Scan | None:
        data_dir = self._workspaces.mounted_data_dir(sandbox_id)  # never mounts: a mount is not for the loop
        if data_dir is None:
            return None
        return safefs.scan(data_dir, max_entries=max_entries, max_depth=max_depth)


def _stat_of(info: os.stat_result) -> safefs.FileStat:
    return safefs.FileStat(info.st_size, info.st_mtime_ns, info.st_ino)


class LocalHost:
    """This machine's engine, its containers bind-mounting their workspaces."""

    def __init__(self, runtime: Runtime, workspaces: WorkspaceStore) -> None:
        self._runtime = runtime
        self.workspaces = workspaces
        self._files = LocalFiles(workspaces)

    @property
    def name(self) -> str:
        return LOCAL

    @property
    def watched(self) -> bool:
        return False

    @property
    def runtime(self) -> Runtime:
        return self._runtime

    @property
    def files(self) -> LocalFiles:
        return self._files

    def memory_bytes(self) -> int:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")

    def alive(self) -> bool:
        return self._runtime.ping()

    def prepare(self, sandbox_id: str) -> dict[str, Any]:
        # New socket names and key at every start: a request queued for a dead kernel never reaches the next one.
        connection = new_connection_info(f"{CONTAINER_RUN_DIR}/kernel")
        self.workspaces.create(sandbox_id, connection)
        return connection

    def launch(self, sandbox_id: str, *, limits: Limits, labels: dict[str, str], connection: dict[str, Any],
               replace: bool) -> None:
        if replace:  # the container reads its (new) connection file from the run dir at start
            self._runtime.restart(sandbox_id)
            return
        self._runtime.create(sandbox_id, limits=limits, run_dir=self.workspaces.run_dir_source(sandbox_id),
                             data_dir=self.workspaces.get(sandbox_id).data_dir, labels=labels | {"host": LOCAL})

    def reach(self, sandbox_id: str, connection: dict[str, Any]) -> tuple[dict[str, Any], Transport | None]:
        return dict(connection, ip=str(self.workspaces.get(sandbox_id).run_dir / "kernel")), None

    def seal(self, sandbox_id: str, connection: dict[str, Any]) -> None:
        self.workspaces.seal(sandbox_id, connection)

    def saved_connection(self, sandbox_id: str) -> dict[str, Any]:
        return self.workspaces.read_connection(sandbox_id)

    def release(self, sandbox_id: str) -> None:
        self.workspaces.release(sandbox_id)

    def discard(self, sandbox_id: str) -> None:
        self.workspaces.remove(sandbox_id)

    def has_files(self, sandbox_id: str) -> bool:
        return self.workspaces.get(sandbox_id).root.exists()

    def save_meta(self, sandbox_id: str, meta: dict[str, Any]) -> None:
        self.workspaces.save_meta(sandbox_id, meta)

    def load_metas(self) -> list[dict[str, Any]]:
        return self.workspaces.load_metas()

    def claim(self) -> None:
        self.workspaces.claim(self._runtime.namespace)

    def adopt(self, sandbox_id: str) -> None:
        # After a host reboot a recovered sandbox's disk is no longer mounted; files must not land beside it.
        self.workspaces.ensure_mounted(self.workspaces.get(sandbox_id))

    def prune(self, keep: Callable[[str], bool]) -> None:
        """Nothing: the local host's workspaces are recovered at start and removed with their sandboxes."""

    def close(self) -> None:
        self.workspaces.detach_all()
