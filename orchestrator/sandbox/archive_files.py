"""/mnt/data files in and out of a sandbox through the Docker API's archive endpoints (issue 33), streamed.

Hostile code owns /mnt/data, so on the way out only a regular file is accepted, checked twice (the engine's stat
header, then the tar entry itself, which is what is actually read): a symlink, fifo, socket, device, folder or
hard link is refused, as is anything over the size limit (refused before reading, and counted while reading,
for a file that grows in between). Names are one plain component: no folders, no "." or "..", no control
characters, at most 255 bytes. On the way in the engine replaces whatever non-folder has the name (a planted
symlink is removed, not followed) and refuses to replace a folder.
"""

from __future__ import annotations

import base64
import json
import tarfile
import time
from collections.abc import Iterator
from typing import BinaryIO

import docker
import docker.errors
import requests
import requests.exceptions

from orchestrator.sandbox.errors import EngineUnavailable, InvalidRequest, SandboxNotFound
from orchestrator.sandbox.runtime import CONTAINER_DATA_DIR

_CHUNK = 1 << 16
_BLOCK = tarfile.BLOCKSIZE
# Go's os.FileMode type bits, as the engine reports them in X-Docker-Container-Path-Stat: dir, symlink, device,
# named pipe, socket, char device, irregular.
_NOT_REGULAR = (1 << 31) | (1 << 27) | (1 << 26) | (1 << 25) | (1 << 24) | (1 << 21) | (1 << 19)


class FileRefused(InvalidRequest):
    """The file is not one the server will copy: not a regular file, too large, or a name it does not accept."""


def checked_name(name: str) -> str:
    """`name` if it is one plain file name; FileRefused otherwise."""
    encoded = name.encode("utf-8", errors="replace")
    if (not name or name in (".", "..") or "/" in name or len(encoded) > 255
            or any(ord(c) < 0x20 or ord(c) == 0x7F for c in name)):
        raise FileRefused(f"not a plain file name: {name[:80]!r}", param="name")
    return name


def put_file(api: docker.APIClient, container_id: str, name: str, source: BinaryIO, size: int, *, uid: int,
             max_bytes: int) -> None:
    """Copy `size` bytes of `source` into /mnt/data/`name`, owned by the sandbox uid, without holding them."""
    if size > max_bytes:
        raise FileRefused(f"{name} is {size} bytes; the limit is {max_bytes}", param="file")
    info = tarfile.TarInfo(checked_name(name))
    info.size, info.mode, info.mtime, info.uid, info.gid = size, 0o644, int(time.time()), uid, uid
    url = api._url("/containers/{0}/archive", container_id)  # docker-py's own URL builder
    try:
        # docker-py's put_archive has no noOverwriteDirNonDir; the endpoint does.
        response = api.put(url, params={"path": CONTAINER_DATA_DIR, "noOverwriteDirNonDir": "true"},
                           data=_tar_stream(info, source), headers={"Content-Type": "application/x-tar"})
        api._raise_for_status(response)  # maps the status to docker-py's errors
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise _translated(exc, container_id) from exc


def _tar_stream(info: tarfile.TarInfo, source: BinaryIO) -> Iterator[bytes]:
    """A one-file tar archive, produced as it is sent."""
    yield info.tobuf(format=tarfile.PAX_FORMAT)
    left = info.size
    while left > 0:
        chunk = source.read(min(_CHUNK, left))
        if not chunk:
            raise FileRefused(f"{info.name} ended {left} bytes short of its size", param="file")
        left -= len(chunk)
        yield chunk
    yield b"\0" * (-info.size % _BLOCK) + b"\0" * (2 * _BLOCK)


def get_file(api: docker.APIClient, container_id: str, name: str, sink: BinaryIO, *, max_bytes: int) -> int:
    """Copy the regular file /mnt/data/`name` into `sink`; the number of bytes. FileRefused for anything else."""
    path = f"{CONTAINER_DATA_DIR}/{checked_name(name)}"
    url = api._url("/containers/{0}/archive", container_id)  # docker-py's own URL builder
    try:
        # identity: the engine would gzip the archive for nothing (and make this end inflate it, unbounded).
        response = api.get(url, params={"path": path}, stream=True, headers={"Accept-Encoding": "identity"})
        api._raise_for_status(response)  # maps the status to docker-py's errors
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise _translated(exc, container_id, name) from exc
    with response:
        _check_stat(name, response.headers.get("X-Docker-Container-Path-Stat", ""), max_bytes)
        try:
            return _copy_member(name, response.raw, sink, max_bytes)
        except (tarfile.TarError, requests.exceptions.RequestException, OSError) as exc:
            if isinstance(exc, FileRefused):
                raise
            raise EngineUnavailable(f"reading {name} from the sandbox failed: {exc}") from exc


def _check_stat(name: str, header: str, max_bytes: int) -> None:
    """The engine's stat of the path, sent before the archive: refuse early what is not a small regular file."""
    try:
        stat = json.loads(base64.b64decode(header))
    except ValueError as exc:
        raise EngineUnavailable(f"the engine sent no readable stat for {name}") from exc
    if int(stat.get("mode", 0)) & _NOT_REGULAR:
        raise FileRefused(f"{name} is not a regular file", param="name")
    if int(stat.get("size", 0)) > max_bytes:
        raise FileRefused(f"{name} is {stat['size']} bytes; the limit is {max_bytes}", param="name")


def _copy_member(name: str, raw: BinaryIO, sink: BinaryIO, max_bytes: int) -> int:
    with tarfile.open(fileobj=raw, mode="r|") as archive:
        member = archive.next()
        if member is None or not member.isreg() or member.name != name:
            raise FileRefused(f"{name} is not a regular file", param="name")
        if member.size > max_bytes:
            raise FileRefused(f"{name} is {member.size} bytes; the limit is {max_bytes}", param="name")
        reader = archive.extractfile(member)
        assert reader is not None  # a regular member always has a reader
        copied = 0
        while chunk := reader.read(_CHUNK):
            copied += len(chunk)
            sink.write(chunk)
        return copied


def _translated(exc: Exception, container_id: str, name: str | None = None) -> Exception:
    if isinstance(exc, docker.errors.NotFound):
        if name is None or "no such container" in str(exc.explanation or exc).lower():
            return SandboxNotFound(container_id)
        return FileRefused(f"no file named {name} in {CONTAINER_DATA_DIR}", param="name")
    if isinstance(exc, docker.errors.APIError) and exc.is_client_error():
        return FileRefused(f"the engine refused the file: {exc.explanation or exc}", param="file")
    return EngineUnavailable(f"Docker engine error: {exc}")
