"""A sandbox's host-side folders: its kernel run dir (connection file, ipc sockets) and its /mnt/data.

Both are folders on a per-sandbox ext4 image mounted through a loop device, so the /mnt/data quota is enforced
by the filesystem inside the sandbox (ENOSPC there), never by filling the host's disk, and the sandbox's mount
table names only its own disk, no host path. The files stay on the host, so they outlive kernel restarts and
container replacement. Without root there is no loop mount: the folders are plain and the quota is not enforced
(the server says so at start).

The run dir is the sandbox's to write only while its kernel starts: once the kernel has bound its sockets the
folder is sealed (owned by root), so the sandbox can no longer replace a socket with a link or plant entries,
and the server checks every socket before it connects. The connection info the server uses is its own copy,
kept beside the disk image where the sandbox cannot reach it.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from orchestrator.sandbox import safefs
from orchestrator.sandbox.claim import claim_namespace
from orchestrator.sandbox.errors import SandboxStartFailed

_CHANNELS = ("shell", "iopub", "stdin", "control", "hb")
_KERNEL_FILE = "kernel.json"


class UnsafeRunDir(Exception):
    """The kernel's sockets are not what the kernel made: missing, or not sockets of the sandbox's uid."""

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
    # A short host path for the kernel's sockets (AF_UNIX paths are capped at 107 bytes): a link, made by the
    # host, to `socket_dir` (a plain folder for workspaces made before sockets moved onto the disk image).
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
    def socket_dir(self) -> Path:
        return self.mount_point / "run"

    @property
    def connection_file(self) -> Path:
        # Host-only: the connection info the server connects with; the kernel reads its own copy in the run dir.
        return self.root / "connection.json"

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
        # Asked once: every cell's file scan checks the mount, and a PATH search per cell was 2% of the CPU.
        self._enforces_quota = quota_bytes > 0 and os.geteuid() == 0 and shutil.which("mkfs.ext4") is not None
        self._claim: TextIO | None = None

    def claim(self, namespace: str) -> None:
        """Make this process the only server of `namespace` on this host (see claim.py); EngineUnavailable if
        another one is. Claiming again from the same store is a no-op."""
        if self._claim is None:
            self._claim = claim_namespace(self._run_root, namespace)

    @property
    def enforces_quota(self) -> bool:
        """Whether /mnt/data is a quota'd loop-mounted disk (needs root; a quota of 0 asks for plain folders)."""
        return self._enforces_quota

    def get(self, sandbox_id: str) -> Workspace:
        return Workspace(self._data_root / sandbox_id, self._run_root / sandbox_id)

    def create(self, sandbox_id: str, connection_info: dict[str, Any]) -> Workspace:
        """Make the folders, mount the quota'd disk, and write the kernel's connection file into an emptied,
        unsealed run dir (the kernel must bind its sockets there)."""
        ws = self.get(sandbox_id)
        ws.root.mkdir(parents=True, exist_ok=True)
        ws.mount_point.mkdir(exist_ok=True)
        try:
            self.ensure_mounted(ws)
        except subprocess.CalledProcessError as exc:
            raise SandboxStartFailed(f"could not prepare the sandbox disk: {exc.stderr or exc}") from exc
        ws.data_dir.mkdir(exist_ok=True)
        self._give_to_sandbox(ws.data_dir)
        self._link_run_dir(ws)
        _atomic_write(ws.connection_file, json.dumps(connection_info))
        fd = os.open(ws.run_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            _empty(fd)
            if self._owner is not None:
                os.fchown(fd, self._owner, self._owner)
            os.fchmod(fd, 0o700)
        finally:
            os.close(fd)
        # The kernel runs as the sandbox uid and reads this; the run dir is the sandbox's, so the file is written
        # with safefs: a planted link is never followed.
        safefs.write_file(ws.run_dir.resolve(strict=True), _KERNEL_FILE, [json.dumps(connection_info).encode()],
                          uid=self._owner, mode=0o600)
        return ws

    def _link_run_dir(self, ws: Workspace) -> None:
        if ws.run_dir.is_dir() and not ws.run_dir.is_symlink():
            return  # made by an earlier version, and bind-mounted into a container that may still run
        ws.socket_dir.mkdir(exist_ok=True)
        ws.run_dir.parent.mkdir(parents=True, exist_ok=True)
        if not ws.run_dir.is_symlink() or ws.run_dir.readlink() != ws.socket_dir:
            ws.run_dir.unlink(missing_ok=True)
            ws.run_dir.symlink_to(ws.socket_dir)

    def run_dir_source(self, sandbox_id: str) -> Path:
        """The real folder to bind-mount as the container's run dir."""
        return self.get(sandbox_id).run_dir.resolve(strict=True)

    def seal(self, sandbox_id: str, connection_info: dict[str, Any]) -> None:
        """Take the run dir from the sandbox once its kernel has bound its sockets: owned by root from now on,
        emptied of anything but the sockets and the connection file, each socket checked. UnsafeRunDir if a
        socket is missing or is not a socket of the sandbox's uid."""
        expected = {f"{os.path.basename(connection_info['ip'])}-{connection_info[f'{c}_port']}" for c in _CHANNELS}
        try:
            fd = os.open(self.get(sandbox_id).run_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise UnsafeRunDir(f"the run dir is gone: {exc.strerror}") from exc
        try:
            if os.geteuid() == 0:
                os.fchown(fd, 0, 0)
            os.fchmod(fd, 0o755)
            _empty(fd, keep=expected | {_KERNEL_FILE})
            for name in expected:
                try:
                    info = os.stat(name, dir_fd=fd, follow_symlinks=False)
                except OSError as exc:
                    raise UnsafeRunDir(f"kernel socket {name} is missing") from exc
                if not stat.S_ISSOCK(info.st_mode) or (self._owner is not None and info.st_uid != self._owner):
                    raise UnsafeRunDir(f"{name} is not a socket made by the sandbox's kernel")
        finally:
            os.close(fd)

    def read_connection(self, sandbox_id: str) -> dict[str, Any]:
        """The server's own copy of the kernel's connection info; ValueError if it is missing or unreadable."""
        try:
            return json.loads(self.get(sandbox_id).connection_file.read_text())
        except OSError as exc:
            raise ValueError(f"no connection info: {exc.strerror}") from exc

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

    def data_dir(self, sandbox_id: str) -> Path:
        """The host folder that is the sandbox's /mnt/data, its disk mounted again if it was released."""
        ws = self.get(sandbox_id)
        if ws.image_file.exists():  # a deleted sandbox's disk is not made anew
            self.ensure_mounted(ws)
        return ws.data_dir

    def mounted_data_dir(self, sandbox_id: str) -> Path | None:
        """The sandbox's /mnt/data folder if it can be read as it is, without mounting its disk; else None."""
        ws = self.get(sandbox_id)
        if self.enforces_quota and not os.path.ismount(ws.mount_point):
            return None
        return ws.data_dir

    def release(self, sandbox_id: str) -> None:
        """Unmount the disk of a sandbox whose container is gone, freeing its loop device; the image (the files)
        stays, and is mounted again when the files or a new container need it."""
        mount_point = self.get(sandbox_id).mount_point
        if os.path.ismount(mount_point):
            subprocess.run(["umount", "-l", str(mount_point)], check=False, capture_output=True)

    def detach_all(self) -> None:
        """At stop: take every disk off the host's mount table. A disk whose container still runs stays mounted in
        that container (recovery mounts the same loop device again); its loop device goes when the container
        does. Left mounted on the host, it would outlive its container for good (issue 27 item 14)."""
        for sandbox_id in self.list_ids():
            self.release(sandbox_id)

    def write_data(self, sandbox_id: str, relative: str, chunks: Iterable[bytes]) -> int:
        """Create or replace a file under the sandbox's /mnt/data, owned by the sandbox uid; returns its size."""
        return safefs.write_file(self.data_dir(sandbox_id), relative, chunks, uid=self._owner)

    def _give_to_sandbox(self, path: Path) -> None:
        if self._owner is not None:
            os.chown(path, self._owner, self._owner, follow_symlinks=False)

    def remove(self, sandbox_id: str) -> None:
        """Unmount and delete everything the sandbox had on the host."""
        ws = self.get(sandbox_id)
        if ws.run_dir.is_symlink():
            ws.run_dir.unlink(missing_ok=True)
        else:
            shutil.rmtree(ws.run_dir, ignore_errors=True)
        self.release(sandbox_id)
        shutil.rmtree(ws.root, ignore_errors=True)

    def save_meta(self, sandbox_id: str, meta: dict[str, Any]) -> None:
        _atomic_write(self.get(sandbox_id).meta_file, json.dumps(meta))

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


def _atomic_write(path: Path, text: str) -> None:
    temporary = path.with_suffix(".partial")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.replace(temporary, path)


def _empty(dir_fd: int, keep: frozenset[str] | set[str] = frozenset()) -> None:
    """Remove every entry of a folder but `keep`, without following any link (folders go whole)."""
    for name in os.listdir(dir_fd):
        if name in keep:
            continue
        try:
            if stat.S_ISDIR(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode):
                shutil.rmtree(name, dir_fd=dir_fd)
            else:
                os.unlink(name, dir_fd=dir_fd)
        except FileNotFoundError:
            continue
