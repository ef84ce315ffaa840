"""A sandbox's host-side folders: its kernel run dir (connection file, ipc sockets) and its /mnt/data.

/mnt/data is a folder on a per-sandbox ext4 image mounted through a loop device, so its size quota is enforced
by the filesystem inside the sandbox (ENOSPC there), never by filling the host's disk. The files stay on the
host, so they outlive kernel restarts and container replacement. Without root there is no loop mount: the
folder is plain and the quota is not enforced (the server says so at start).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.sandbox import safefs
from orchestrator.sandbox.errors import SandboxStartFailed

_SIZE_SUFFIXES = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str) -> int:
    """'512m' -> bytes. Accepts a plain number of bytes or k/m/g/t suffixes (binary units)."""
    value = text.strip().lower().removesuffix("b").removesuffix("i")
    if value and value[-1] in _SIZE_SUFFIXES:
        return int(float(value[:-1]) * _SIZE_SUFFIXES[value[-1]])
    return int(value)


@dataclass(frozen=True)
class Workspace:
    """Host paths of one sandbox."""

    root: Path
    run_dir: Path

    @property
    def image_file(self) -> Path:
        return self.root / "disk.img"

    @property
    def mount_point(self) -> Path:
        return self.root / "disk"

    @property
    def data_dir(self) -> Path:
        # A subfolder, so the filesystem's lost+found never shows up in /mnt/data.
        return self.mount_point / "data"

    @property
    def connection_file(self) -> Path:
        return self.run_dir / "kernel.json"

    @property
    def meta_file(self) -> Path:
        # Host-only (beside the disk image, outside what the sandbox can see): who this sandbox is, so it can
        # be recovered after its container was reclaimed.
        return self.root / "sandbox.json"


class WorkspaceStore:
    """Creates, finds and removes workspaces under `data_root` (files) and `run_root` (sockets)."""

    def __init__(self, data_root: Path, run_root: Path, *, uid: int, quota_bytes: int) -> None:
        self._data_root = data_root
        self._run_root = run_root
        self._uid = uid
        self._quota_bytes = quota_bytes

    @property
    def enforces_quota(self) -> bool:
        return os.geteuid() == 0 and shutil.which("mkfs.ext4") is not None

    def get(self, sandbox_id: str) -> Workspace:
        return Workspace(self._data_root / sandbox_id, self._run_root / sandbox_id)

    def create(self, sandbox_id: str, connection_info: dict[str, Any]) -> Workspace:
        """Make the folders, mount the quota'd disk, and write the kernel's connection file."""
        ws = self.get(sandbox_id)
        ws.root.mkdir(parents=True, exist_ok=True)
        ws.run_dir.mkdir(parents=True, exist_ok=True)
        ws.mount_point.mkdir(exist_ok=True)
        try:
            self.ensure_mounted(ws)
        except subprocess.CalledProcessError as exc:
            raise SandboxStartFailed(f"could not prepare the sandbox disk: {exc.stderr or exc}") from exc
        ws.data_dir.mkdir(exist_ok=True)
        for stale in ws.run_dir.glob("kernel-*"):  # sockets of a previous kernel
            stale.unlink(missing_ok=True)
        # The kernel runs as the sandbox uid and rewrites its connection file; nobody else may read the key.
        # The run dir is the sandbox's, so the file is written with safefs: a planted link is never followed.
        safefs.write_file(ws.run_dir, ws.connection_file.name, [json.dumps(connection_info).encode()],
                          uid=self._owner, mode=0o600)
        for path in (ws.run_dir, ws.data_dir):
            self._give_to_sandbox(path)
        ws.run_dir.chmod(0o700)
        return ws

    def read_connection(self, sandbox_id: str) -> dict[str, Any]:
        """The connection file as the kernel left it (it may have rewritten it); ValueError if unreadable."""
        ws = self.get(sandbox_id)
        try:
            fd, _ = safefs.open_regular(ws.run_dir, ws.connection_file.name)
        except safefs.UnsafePath as exc:
            raise ValueError(str(exc)) from exc
        return json.loads(b"".join(safefs.read_chunks(fd, limit=1 << 16)))

    def ensure_mounted(self, ws: Workspace) -> None:
        """Mount the workspace's disk image if it is not mounted (first use, or after a host reboot)."""
        if not self.enforces_quota or os.path.ismount(ws.mount_point):
            return
        if not ws.image_file.exists():
            with open(ws.image_file, "wb") as fh:
                fh.truncate(self._quota_bytes)
            subprocess.run(
                ["mkfs.ext4", "-q", "-F", "-m", "0", "-E", "lazy_itable_init=1,lazy_journal_init=1",
                 str(ws.image_file)],
                check=True, capture_output=True, text=True,
            )
        subprocess.run(["mount", "-o", "loop,nosuid,nodev", str(ws.image_file), str(ws.mount_point)],
                       check=True, capture_output=True, text=True)

    @property
    def _owner(self) -> int | None:
        return self._uid if os.geteuid() == 0 else None

    def write_data(self, sandbox_id: str, relative: str, chunks: Iterable[bytes]) -> int:
        """Create or replace a file under the sandbox's /mnt/data, owned by the sandbox uid; returns its size."""
        return safefs.write_file(self.get(sandbox_id).data_dir, relative, chunks, uid=self._owner)

    def _give_to_sandbox(self, path: Path) -> None:
        if self._owner is not None:
            os.chown(path, self._owner, self._owner, follow_symlinks=False)

    def remove(self, sandbox_id: str) -> None:
        """Unmount and delete everything the sandbox had on the host."""
        ws = self.get(sandbox_id)
        if os.path.ismount(ws.mount_point):
            subprocess.run(["umount", "-l", str(ws.mount_point)], check=False, capture_output=True)
        shutil.rmtree(ws.run_dir, ignore_errors=True)
        shutil.rmtree(ws.root, ignore_errors=True)

    def save_meta(self, sandbox_id: str, meta: dict[str, Any]) -> None:
        ws = self.get(sandbox_id)
        temporary = ws.meta_file.with_suffix(".partial")
        temporary.write_text(json.dumps(meta))
        os.replace(temporary, ws.meta_file)

    def load_metas(self) -> list[dict[str, Any]]:
        """The metadata of every workspace on disk (sandboxes whose containers may be gone)."""
        metas = []
        for sandbox_id in self.list_ids():
            try:
                metas.append(json.loads(self.get(sandbox_id).meta_file.read_text()))
            except (OSError, ValueError):
                continue
        return metas

    def list_ids(self) -> list[str]:
        if not self._data_root.exists():
            return []
        return sorted(p.name for p in self._data_root.iterdir() if p.is_dir())
