"""File operations on folders a sandbox can write to, done by the (root) host without being fooled by them.

Hostile code owns everything under /mnt/data and the kernel's run dir. It can plant a symlink named like the
file the host is about to read or write (`out.csv -> /etc/shadow`), a FIFO that blocks a reader forever, or swap
a folder for a link between the host's check and its use. So every path is walked one component at a time from
a directory fd with O_NOFOLLOW, nothing but regular files is read, and ownership is changed on the open fd.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Generator, Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_CHUNK = 1 << 20


class UnsafePath(Exception):
    """The path is not a plain relative path to a regular file beneath the root."""


@dataclass(frozen=True)
class FileStat:
    """What identifies one version of a file: a change to any field means it was written again."""

    size: int
    mtime_ns: int
    inode: int


def split(relative: str) -> tuple[str, ...]:
    """The components of a relative path; UnsafePath for absolute paths, '..', or empty names."""
    path = PurePosixPath(relative)
    if path.is_absolute() or not path.parts or any(part in ("..", ".") for part in path.parts):
        raise UnsafePath(f"not a relative path beneath the sandbox folder: {relative!r}")
    return path.parts


def _open_parent(root: Path, parts: tuple[str, ...], *, create: bool = False, uid: int | None = None) -> int:
    """An fd of the folder holding parts[-1], reached without following any link."""
    fd = os.open(root, _DIR_FLAGS)
    try:
        for part in parts[:-1]:
            if create:
                try:
                    os.mkdir(part, 0o755, dir_fd=fd)
                    if uid is not None:
                        os.chown(part, uid, uid, dir_fd=fd, follow_symlinks=False)
                except FileExistsError:
                    pass
            child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = child
    except OSError:
        os.close(fd)
        raise
    return fd


def open_regular(root: Path, relative: str) -> tuple[int, os.stat_result]:
    """Open `root/relative` for reading; (fd, stat). UnsafePath if it is a link, a folder, a FIFO, a device."""
    parts = split(relative)
    try:
        parent = _open_parent(root, parts)
    except OSError as exc:
        raise UnsafePath(f"{relative}: {exc.strerror}") from exc
    try:
        fd = os.open(parts[-1], _READ_FLAGS, dir_fd=parent)
    except OSError as exc:
        raise UnsafePath(f"{relative}: {exc.strerror}") from exc
    finally:
        os.close(parent)
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise UnsafePath(f"{relative}: not a regular file")
    return fd, info


def read_chunks(fd: int, limit: int | None = None) -> Generator[bytes, None, None]:
    """The bytes of an open fd, chunk by chunk (at most `limit` bytes); closes the fd when done."""
    remaining = limit
    try:
        while remaining is None or remaining > 0:
            chunk = os.read(fd, _CHUNK if remaining is None else min(_CHUNK, remaining))
            if not chunk:
                return
            if remaining is not None:
                remaining -= len(chunk)
            yield chunk
    finally:
        os.close(fd)


def write_file(root: Path, relative: str, chunks: Iterable[bytes], *, uid: int | None, mode: int = 0o644) -> int:
    """Create or replace `root/relative` with `chunks`, owned by `uid`; returns the bytes written.

    The bytes go to a temporary name first and are renamed over the target, so a failed write leaves the old
    file intact, and a link planted at the target is replaced, never followed. Missing folders are created.
    """
    parts = split(relative)
    temporary = f".{parts[-1][:200]}.{secrets.token_hex(4)}.partial"
    parent = _open_parent(root, parts, create=True, uid=uid)
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode,
                     dir_fd=parent)
        written = 0
        try:
            with os.fdopen(fd, "wb", closefd=True) as out:
                if uid is not None:
                    os.fchown(out.fileno(), uid, uid)
                for chunk in chunks:
                    out.write(chunk)
                    written += len(chunk)
            os.rename(temporary, parts[-1], src_dir_fd=parent, dst_dir_fd=parent)
        except BaseException:
            os.unlink(temporary, dir_fd=parent)
            raise
    finally:
        os.close(parent)
    return written


def remove_file(root: Path, relative: str) -> bool:
    """Unlink `root/relative` (a link is removed itself, not its target); False if it was not there."""
    parts = split(relative)
    try:
        parent = _open_parent(root, parts)
    except OSError:
        return False
    try:
        os.unlink(parts[-1], dir_fd=parent)
        return True
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        return False
    finally:
        os.close(parent)


@dataclass(frozen=True)
class Scan:
    """The regular files a scan found, by relative path, and whether it saw every entry beneath the root."""

    files: dict[str, FileStat]
    complete: bool


def scan(root: Path, *, max_entries: int = 10_000, max_depth: int = 32) -> Scan:
    """Every regular file beneath `root`, walked depth-first with one open folder per level.

    Links, FIFOs, sockets and devices are skipped, as are names that are not UTF-8 (they cannot be named in JSON
    without ambiguity). Folders are entered by fd with O_NOFOLLOW, so a folder swapped for a link mid-walk is
    skipped, not followed. The walk stops after `max_entries` entries and does not enter folders deeper than
    `max_depth`, so a tree built to be wide or deep costs a bounded number of fds and system calls; the result
    then says it is not complete.
    """
    found: dict[str, FileStat] = {}
    try:
        root_fd = os.open(root, _DIR_FLAGS)
    except OSError:
        return Scan(found, True)
    budget, complete = max_entries, True
    # One (prefix, fd, entries) per level of the current path; entries is the folder's lazy listing.
    stack: list[tuple[str, int, Any]] = []

    def enter(prefix: str, fd: int) -> None:
        try:
            stack.append((prefix, fd, os.scandir(fd)))
        except OSError:
            os.close(fd)

    enter("", root_fd)
    try:
        while stack:
            prefix, fd, entries = stack[-1]
            entry = next(entries, None)
            if entry is None:
                stack.pop()
                entries.close()
                os.close(fd)
                continue
            if budget == 0:
                complete = False
                break
            budget -= 1
            relative = f"{prefix}/{entry.name}" if prefix else entry.name
            try:
                os.fsencode(entry.name).decode("utf-8")
                info = entry.stat(follow_symlinks=False)
                if stat.S_ISREG(info.st_mode):
                    found[relative] = FileStat(info.st_size, info.st_mtime_ns, info.st_ino)
                elif stat.S_ISDIR(info.st_mode):
                    if len(stack) >= max_depth:
                        complete = False
                    else:
                        enter(relative, os.open(entry.name, _DIR_FLAGS, dir_fd=fd))
            except (OSError, UnicodeDecodeError):
                continue  # removed, swapped for a link, or unnamable: skip it
    finally:
        for _, fd, entries in stack:
            entries.close()
            os.close(fd)
    return Scan(found, complete)
