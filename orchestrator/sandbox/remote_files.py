"""/mnt/data of sandboxes on a Docker engine that shares no filesystem with the server (issue 33).

The files live on a tmpfs volume mounted in the sandbox and in its keeper container. Each operation is one Docker
exec in the keeper running file_agent.py, which applies safefs's own functions to /mnt/data under the sandbox uid:
the checks the local host makes, made where the files are, with no power beyond what the sandbox has anyway.
`python3 -I` and the exec's working dir "/" keep the agent from importing anything the sandbox planted in
/mnt/data (the image's working dir, which `-c` would otherwise put first on sys.path); -S leaves out the image's
packages and their .pth files: the agent needs the standard library only.

The sandbox decides what the agent sees, so everything read back is bounded: status lines, chunks (at most safefs's
read size, and no more in all than the size reported), a scan's JSON (16 MiB), and stderr, of which ExecStream
keeps only the end. The agent's last line says how the operation ended; the exit code is asked for only when that
line never came (one round trip fewer per operation).
"""

from __future__ import annotations

import json
import select
import socket
import ssl
from collections.abc import Callable, Generator, Iterable
from pathlib import Path
from typing import Any, NoReturn

import docker
import docker.errors
import requests.exceptions

from orchestrator.sandbox import file_agent, safefs
from orchestrator.sandbox.errors import EngineUnavailable, SandboxNotFound
from orchestrator.sandbox.kernel_channel import ExecStream, close_attached

_AGENT = Path(file_agent.__file__).read_text()
_SAFEFS = Path(safefs.__file__).read_text()
_ENGINE_ERRORS = (docker.errors.DockerException, requests.exceptions.RequestException)
_STATUS_LIMIT = 64 << 10
SCAN_LIMIT = 16 << 20
_CHUNK = file_agent.MAX_INPUT_CHUNK
# Frames of a write are gathered up to this before a send: a small file goes out in one TLS record.
_SEND_BATCH = 256 << 10
# How long one send or receive may wait; a large transfer may take longer in all.
_IO_TIMEOUT = 120.0
# A path is one argv string of the exec (the kernel caps those at 128 KiB); no real path comes near this.
_MAX_PATH_BYTES = 32 << 10


def _checked(path: str) -> str:
    """`path` if it can name a file beneath /mnt/data; UnsafePath before any exec otherwise."""
    safefs.split(path)
    try:
        size = len(path.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise safefs.UnsafePath(f"not a UTF-8 path: {path[:200]!r}") from exc
    if "\0" in path or size > _MAX_PATH_BYTES:
        raise safefs.UnsafePath(f"not a path beneath the sandbox folder: {path[:200]!r}")
    return path


class _Exec:
    """One run of the agent: its attached connection, read through ExecStream's demultiplexing, blocking."""

    def __init__(self, api: docker.APIClient, sandbox_id: str, exec_id: str, result: Any) -> None:
        self._api, self._sandbox_id, self._exec_id, self._result = api, sandbox_id, exec_id, result
        # docker-py gives the socket of the upgraded connection (TLS) or its SocketIO (a Unix socket).
        self._sock: socket.socket = getattr(result, "_sock", result)
        self._sock.settimeout(_IO_TIMEOUT)
        self._stream = ExecStream(self._sock)
        self._buffer = bytearray()

    def __enter__(self) -> _Exec:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        close_attached(self._result)

    def send(self, chunks: Iterable[bytes]) -> None:
        """`chunks` framed for the agent, then the empty chunk that ends them. An error of `chunks` itself
        propagates (the exec is then closed, and the agent drops the partial file)."""
        pending, replies = bytearray(), select.poll()  # poll, not select: a busy server's fds pass 1024
        replies.register(self._sock, select.POLLIN)
        for chunk in chunks:
            view = memoryview(chunk)  # slices of it copy nothing: a caller's large chunk is not doubled
            for start in range(0, len(view), _CHUNK):
                piece = view[start:start + _CHUNK]
                pending += len(piece).to_bytes(file_agent.LENGTH_BYTES, "big")
                pending += piece
                if len(pending) >= _SEND_BATCH:
                    # Anything from the agent before the end of its input is an error (a full disk, a folder in
                    # the way): the rest need not be sent.
                    if replies.poll(0) or not self._sendall(pending):
                        return
                    pending.clear()
        pending += file_agent.END
        self._sendall(pending)

    def _sendall(self, data: bytearray) -> bool:
        try:
            self._sock.sendall(data)
            return True
        except TimeoutError as exc:
            raise EngineUnavailable(f"the file agent stopped reading for {_IO_TIMEOUT:.0f} s") from exc
        except OSError:
            return False  # the agent stopped reading: its answer, or its lack of one, says why

    def _more(self) -> bool:
        try:
            data = self._stream.recv()
        except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
            return False
        except OSError as exc:
            raise EngineUnavailable(f"lost the file agent's connection: {exc}") from exc
        if data is None:  # ExecStream's "nothing yet", which a blocking socket should not give
            return True
        self._buffer += data
        return bool(data)

    def _line(self, limit: int) -> bytes:
        start = 0
        while (end := self._buffer.find(b"\n", start)) < 0:
            if len(self._buffer) > limit:
                raise self._garbled(f"an answer of over {limit} bytes")
            start = len(self._buffer)
            if not self._more():
                self._ended()
        return self._take(end, end + 1)

    def exact(self, count: int) -> bytes:
        while len(self._buffer) < count:
            if not self._more():
                self._ended()
        return self._take(count, count)

    def _take(self, count: int, consumed: int) -> bytes:
        with memoryview(self._buffer) as view:  # one copy, not a bytearray slice and then its bytes
            data = bytes(view[:count])
        del self._buffer[:consumed]
        return data

    def status(self, limit: int = _STATUS_LIMIT) -> dict[str, Any]:
        """The agent's next status line; its error raised as the exception safefs would have raised here."""
        line = self._line(limit)
        try:
            payload = json.loads(line)
        except (ValueError, RecursionError):
            payload = None
        if not isinstance(payload, dict):
            raise self._garbled(f"not a status line: {line[:200]!r}")
        error = payload.get("error")
        if error == "unsafe":
            raise safefs.UnsafePath(str(payload.get("message"))[:1000])
        if error == "os" and isinstance(payload.get("errno"), int) and isinstance(payload.get("strerror"), str):
            # OSError picks the subclass from the errno: EISDIR comes back an IsADirectoryError.
            raise OSError(payload["errno"], payload["strerror"][:200])
        if error is not None:
            raise self._garbled(f"an unknown error {str(error)[:80]!r}")
        return payload

    def _ended(self) -> NoReturn:
        """The connection ended before the agent's answer: the keeper is gone, or the agent failed."""
        try:
            code = self._api.exec_inspect(self._exec_id).get("ExitCode")
        except docker.errors.NotFound as exc:
            raise SandboxNotFound(self._sandbox_id) from exc
        except _ENGINE_ERRORS:
            code = None
        raise EngineUnavailable(f"the file agent of sandbox {self._sandbox_id} ended without answering "
                                f"(exit {code}): {self._stream.stderr_tail.decode(errors='replace')[-1000:]}")

    def _garbled(self, what: str) -> EngineUnavailable:
        return EngineUnavailable(f"the file agent of sandbox {self._sandbox_id} sent {what}")

    def chunks(self, size: int) -> Generator[bytes, None, None]:
        """The bytes the agent streams after a read's stat (no more than `size`), then its final status."""
        try:
            yield b""  # primed by read(): from here on, closing or dropping the iterator releases the exec
            total = 0
            while length := int.from_bytes(self.exact(file_agent.LENGTH_BYTES), "big"):
                total += length
                if length > _CHUNK or total > size:
                    raise self._garbled(f"more bytes than the {size} it reported")
                yield self.exact(length)
            self.status()
        finally:
            self.close()


def _file_stat(value: Any) -> safefs.FileStat:
    if not (isinstance(value, list) and len(value) == 3 and all(type(v) is int for v in value)):
        raise EngineUnavailable(f"the file agent sent a malformed stat: {str(value)[:200]}")
    return safefs.FileStat(*value)


class RemoteFiles:
    """/mnt/data of sandboxes on one Docker engine, reached through an exec in each sandbox's keeper container."""

    def __init__(self, api: docker.APIClient, keeper_of: Callable[[str], str], *, uid: int) -> None:
        self._api, self._keeper_of, self._user = api, keeper_of, f"{uid}:{uid}"

    def _run(self, sandbox_id: str, *args: str, stdin: bool = False) -> _Exec:
        command = ["python3", "-I", "-S", "-c", _AGENT, _SAFEFS, *args]
        try:
            exec_id = self._api.exec_create(self._keeper_of(sandbox_id), command, stdin=stdin, stdout=True,
                                            stderr=True, user=self._user, workdir="/")["Id"]
            result = self._api.exec_start(exec_id, socket=True)
        except docker.errors.NotFound as exc:
            raise SandboxNotFound(sandbox_id) from exc
        except docker.errors.APIError as exc:
            if exc.status_code == 409:  # the keeper is stopped, or being removed: its tmpfs is gone with it
                raise SandboxNotFound(sandbox_id) from exc
            raise EngineUnavailable(f"Docker engine error reaching sandbox {sandbox_id}'s files: {exc}") from exc
        except _ENGINE_ERRORS as exc:
            raise EngineUnavailable(f"Docker engine unreachable for sandbox {sandbox_id}'s files: {exc}") from exc
        return _Exec(self._api, sandbox_id, exec_id, result)

    def write(self, sandbox_id: str, path: str, chunks: Iterable[bytes]) -> safefs.FileStat:
        """Create or replace /mnt/data/`path` (folders made as needed) as safefs.write_file does; its stat.
        IsADirectoryError when a folder is in the way, OSError with the agent's errno (ENOSPC: the volume is
        full), safefs.UnsafePath for a bad path or a result that is not a regular file."""
        with self._run(sandbox_id, "write", _checked(path), stdin=True) as run:
            run.send(chunks)
            return _file_stat(run.status().get("stat"))

    def read(self, sandbox_id: str, path: str) -> tuple[safefs.FileStat, Generator[bytes, None, None]]:
        """A regular file's stat and its bytes, streamed; safefs.UnsafePath for anything else or nothing. The
        iterator holds the exec's connection until it is exhausted, closed or dropped."""
        run = self._run(sandbox_id, "read", _checked(path))
        try:
            stat = _file_stat(run.status().get("stat"))
            chunks = run.chunks(stat.size)
            next(chunks)
        except BaseException:
            run.close()
            raise
        return stat, chunks

    def remove(self, sandbox_id: str, path: str) -> bool:
        """Unlink /mnt/data/`path` (a link itself, never its target); False if it was not there."""
        with self._run(sandbox_id, "remove", _checked(path)) as run:
            removed = run.status().get("removed")
        if not isinstance(removed, bool):
            raise EngineUnavailable(f"the file agent sent a malformed answer to remove: {str(removed)[:200]}")
        return removed

    def scan(self, sandbox_id: str, *, max_entries: int, max_depth: int) -> safefs.Scan | None:
        """safefs.scan of /mnt/data, made inside; None when the keeper is gone. The agent leaves out entries
        past SCAN_LIMIT bytes of answer (the scan is then not complete); an answer beyond it is refused."""
        try:
            with self._run(sandbox_id, "scan", str(max_entries), str(max_depth), str(SCAN_LIMIT - 1024)) as run:
                payload = run.status(SCAN_LIMIT)
        except SandboxNotFound:
            return None
        files: dict[str, safefs.FileStat] = {}
        try:
            for name, *stat in payload["files"]:
                if not isinstance(name, str):
                    raise TypeError(name)
                files[name] = _file_stat(stat)
            complete = payload["complete"]
        except (KeyError, TypeError, ValueError) as exc:
            raise EngineUnavailable(f"the file agent sent a malformed scan: {exc!r:.200}") from exc
        if not isinstance(complete, bool):
            raise EngineUnavailable("the file agent sent a malformed scan")
        return safefs.Scan(files, complete)

    def glance(self, sandbox_id: str, *, max_entries: int, max_depth: int) -> safefs.Scan | None:
        """None: no scan of a remote host is cheap enough for the event loop (host.SandboxFiles)."""
        return None
