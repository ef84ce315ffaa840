"""One long-lived file agent (file_agent.py) in a sandbox's keeper container, reached over a Docker exec's
attached stream (issue 33), and the slot that gives it to one operation at a time: remote_files.py's transport.

The stream is read through ExecStream's demultiplexing, blocking, with every read bounded (status lines, chunks
no larger than announced, a scan's JSON at SCAN_LIMIT). An agent whose state is not known (an operation cut
short, a garbled answer, a timeout) is closed rather than reused.
"""

from __future__ import annotations

import select
import socket
import ssl
import threading
import time
from collections.abc import Generator, Iterable
from contextlib import suppress
from typing import Any, NoReturn

from orchestrator.sandbox import file_agent, safefs
from orchestrator.sandbox.errors import EngineUnavailable, SandboxNotFound
from orchestrator.sandbox.kernel_channel import ExecLink

_STATUS_LIMIT = 64 << 10
SCAN_LIMIT = 16 << 20
_CHUNK = file_agent.MAX_INPUT_CHUNK
# Frames of a write are gathered up to this before a send: a small file goes out in one TLS record.
_SEND_BATCH = 256 << 10
# How long one send or receive may wait; a large transfer may take longer in all.
_IO_TIMEOUT = 120.0


class AgentExec:
    """One agent: its attached exec (kernel_channel.ExecLink), read blocking."""

    def __init__(self, sandbox_id: str, link: ExecLink) -> None:
        self._sandbox_id, self._link = sandbox_id, link
        self._sock = link.sock
        self._sock.settimeout(_IO_TIMEOUT)
        self._buffer = bytearray()
        # idle: between requests. answered: the request got a byte back. lent_since: when a reader got a chunk.
        self.idle, self.answered, self.closed = True, False, False
        self.lent_since: float | None = None

    def close(self, *, release: bool = True) -> None:
        """Shut the connection, which wakes a thread blocked on it and ends the agent's stdin; `release` frees it
        too (not while another thread may still hold it: its descriptor number could be reused under it)."""
        self.closed = True
        with suppress(OSError, ValueError):
            self._sock.shutdown(socket.SHUT_RDWR)
        if release:
            self._link.close()

    def usable(self) -> bool:
        """False if anything came between two requests: the connection ended (the agent or its keeper died)."""
        ready = select.poll()  # poll, not select: a busy server's fds pass 1024
        ready.register(self._sock, select.POLLIN)
        return not self.closed and not self._buffer and not ready.poll(0)

    def send(self, message: bytes, chunks: Iterable[bytes] | None = None) -> None:
        """A request; for a write, `chunks` framed, then the empty chunk that ends them. An error of `chunks`
        itself propagates (the agent is then closed, and drops the partial file)."""
        self.idle, self.answered = False, False
        pending = bytearray(message)
        if chunks is not None:
            replies = select.poll()
            replies.register(self._sock, select.POLLIN)
            for part in file_agent.framed(chunks):
                pending += part
                if len(pending) >= _SEND_BATCH:
                    # Anything from the agent before the end of its input is an error (a full disk, a folder in
                    # the way): the rest need not be sent, only the empty chunk its draining waits for.
                    if replies.poll(0) and self._early_answer():
                        pending.clear()
                        break
                    if not self._sendall(pending):
                        return
                    pending.clear()
            pending += file_agent.END
        self._sendall(pending)

    def ask(self, message: bytes, limit: int = _STATUS_LIMIT, *, final: bool = True) -> dict[str, Any]:
        self.send(message)
        return self.status(limit, final=final)

    def _sendall(self, data: bytearray) -> bool:
        try:
            self._sock.sendall(data)
            return True
        except TimeoutError as exc:
            raise EngineUnavailable(f"the file agent stopped reading for {_IO_TIMEOUT:.0f} s") from exc
        except (OSError, ValueError):
            return False  # the agent stopped reading: its answer, or its lack of one, says why

    def _early_answer(self) -> bool:  # a TLS record of its own makes the socket readable too: stdout counts

        self._sock.settimeout(0)
        try:
            self._more()
        finally:
            self._sock.settimeout(_IO_TIMEOUT)
        return bool(self._buffer)

    def _more(self) -> bool:
        if self.closed:
            raise EngineUnavailable(f"the file agent of sandbox {self._sandbox_id} was closed while its reader "
                                    "kept it (too long without taking a chunk, or its sandbox forgotten)")
        try:
            data = self._link.recv()
        except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
            return False
        except (OSError, ValueError) as exc:
            self._lost(f"lost its connection ({exc})")
        if data is None:  # the link's "nothing yet": a blocking socket gives it only amid a TLS record
            return True
        self._buffer += data
        self.answered = self.answered or bool(data)
        return bool(data)

    def _line(self, limit: int) -> bytes:
        start = 0
        while (end := self._buffer.find(b"\n", start)) < 0:
            if len(self._buffer) > limit:
                raise self._garbled(f"an answer of over {limit} bytes")
            start = len(self._buffer)
            if not self._more():
                self._lost("ended without answering")
        return self._take(end, end + 1)

    def exact(self, count: int) -> bytes:
        while len(self._buffer) < count:
            if not self._more():
                self._lost("ended without answering")
        return self._take(count, count)

    def _take(self, count: int, consumed: int) -> bytes:
        with memoryview(self._buffer) as view:  # one copy, not a bytearray slice and then its bytes
            data = bytes(view[:count])
        del self._buffer[:consumed]
        return data

    def status(self, limit: int = _STATUS_LIMIT, *, final: bool = True) -> dict[str, Any]:
        """The agent's next status line; its error raised as the exception safefs would have raised here. After a
        request's last line, or an error, the agent waits for the next request."""
        try:
            payload = file_agent.parse_status(self._line(limit))
        except ValueError as exc:
            raise self._garbled(str(exc)) from exc
        error = payload.get("error")
        self.idle = final or error is not None
        if error == "unsafe":
            raise safefs.UnsafePath(str(payload.get("message"))[:1000])
        if error == "os" and isinstance(payload.get("errno"), int) and isinstance(payload.get("strerror"), str):
            # OSError picks the subclass from the errno: EISDIR comes back an IsADirectoryError.
            raise OSError(payload["errno"], payload["strerror"][:200])
        if error is not None:
            self.idle = False
            raise self._garbled(f"an unknown error {str(error)[:80]!r}")
        return payload

    def _lost(self, detail: str) -> NoReturn:
        """The connection failed: the keeper is gone or stopped (its tmpfs with it), or the agent is."""
        if self._link.target_running() is False:
            raise SandboxNotFound(self._sandbox_id)
        raise EngineUnavailable(f"the file agent of sandbox {self._sandbox_id} {detail}: "
                                f"{self._link.stderr_tail.decode(errors='replace')[-1000:]}")

    def _garbled(self, what: str) -> EngineUnavailable:
        return EngineUnavailable(f"the file agent of sandbox {self._sandbox_id} sent {what}")

    def chunks(self, size: int) -> Generator[bytes, None, None]:
        """The bytes the agent streams after a read's stat (no more than `size`), then its final status."""
        total, self.lent_since = 0, None
        while length := int.from_bytes(self.exact(file_agent.LENGTH_BYTES), "big"):
            total += length
            if length > _CHUNK or total > size:
                raise self._garbled(f"more bytes than the {size} it reported")
            self.lent_since = time.monotonic()
            yield self.exact(length)
            self.lent_since = None
        self.status()


class AgentSlot:
    """A sandbox's agent (started by the first operation that needs it) and the lock that serialises its use."""

    def __init__(self) -> None:
        self.lock, self.evicted = threading.Lock(), False
        self.exec: AgentExec | None = None

    def stale(self, limit: float) -> bool:
        """Whether a read's caller has kept the agent over `limit` seconds without taking a chunk."""
        lent = self.exec.lent_since if self.exec is not None else None
        return lent is not None and time.monotonic() - lent > limit

    def evict(self) -> None:
        """Close it for good; if an operation holds it, that operation fails and closes it as it lets go."""
        self.evicted = True
        if self.lock.acquire(blocking=False):
            self.drop()
            self.lock.release()
        elif self.exec is not None:
            self.exec.close(release=False)

    def drop(self) -> None:
        run, self.exec = self.exec, None
        if run is not None:
            run.close()
