"""Carries a Jupyter kernel's five ZMQ channels over one byte stream (issue 33): the relay that runs at both ends.

Inside the sandbox it runs as `python3 -c <this file> <ports>` through a Docker exec: it connects to the kernel on
the container's loopback and its stdin/stdout are the stream. In the server it binds the channels where
jupyter_client connects, and the stream is that exec's attached socket. It needs only the standard library and
pyzmq, so the sandbox image does not change. Messages pass through untouched: the kernel's HMAC signature stays on
every one and only the server's KernelSession checks it.

A message on the stream: channel index (1 byte), frame count (2 bytes), then each frame as length (4 bytes) and
bytes, all big-endian. A message over the size limit or with too many frames is read past and dropped, so what
the far end sends costs this end at most one message of memory.
"""

from __future__ import annotations

import os
import select
import ssl
import struct
import sys
import threading
from typing import Protocol

import zmq

CHANNELS = ("shell", "iopub", "stdin", "control", "hb")
HELLO = b"toolshed-kernel-relay/1\n"
MAX_FRAMES = 64
_HEAD, _LENGTH = struct.Struct("!BH"), struct.Struct("!I")
_READ_SIZE = 1 << 16
# How much stream output may wait before the relay stops taking ZMQ messages (ZMQ's own queues then fill and drop,
# as they would for a slow client).
_MAX_PENDING = 4 << 20
_POLL_MS = 500


def encode(channel: int, frames: list[bytes]) -> bytes:
    """One message on the stream."""
    parts = [_HEAD.pack(channel, len(frames))]
    for frame in frames:
        parts += [_LENGTH.pack(len(frame)), frame]
    return b"".join(parts)


class Decoder:
    """Turns stream bytes back into (channel, frames); bounded by `max_bytes` per message and MAX_FRAMES."""

    def __init__(self, max_bytes: int) -> None:
        self._max = max_bytes
        self._buf = bytearray()
        self._channel, self._frames_left, self._frame_left = -1, 0, -1
        self._frames: list[bytes] = []
        self._current = bytearray()
        self._size, self._oversized = 0, False
        self.dropped = 0

    def feed(self, data: bytes) -> list[tuple[int, list[bytes]]]:
        out: list[tuple[int, list[bytes]]] = []
        view, pos = memoryview(data), 0
        while pos < len(view):
            if self._frame_left > 0:
                take = min(self._frame_left, len(view) - pos)
                if not self._oversized:
                    self._current += view[pos:pos + take]
                pos, self._frame_left = pos + take, self._frame_left - take
            else:
                need = _LENGTH.size if self._frames_left else _HEAD.size
                take = min(need - len(self._buf), len(view) - pos)
                self._buf += view[pos:pos + take]
                pos += take
                if len(self._buf) == need:
                    self._header(need)
            if self._frame_left == 0:
                self._end_frame(out)
        return out

    def _header(self, size: int) -> None:
        if size == _HEAD.size and not self._frames_left:
            self._channel, self._frames_left = _HEAD.unpack(self._buf)
            self._oversized = self._frames_left > MAX_FRAMES or self._channel >= len(CHANNELS)
            self._frames, self._size = [], 0
        else:
            (self._frame_left,) = _LENGTH.unpack(self._buf)
            self._size += self._frame_left
            self._oversized = self._oversized or self._size > self._max
        self._buf.clear()

    def _end_frame(self, out: list[tuple[int, list[bytes]]]) -> None:
        self._frame_left = -1
        self._frames_left -= 1
        if not self._oversized:
            self._frames.append(bytes(self._current))
        self._current = bytearray()
        if self._frames_left == 0:
            if self._oversized:
                self.dropped += 1
            else:
                out.append((self._channel, self._frames))
            self._frames, self._oversized = [], False


class Stream(Protocol):
    """A non-blocking byte stream: recv gives b"" at its end and None when nothing is there yet; send returns how
    much it took (0 when it would block)."""

    def fileno(self) -> int: ...
    def recv(self) -> bytes | None: ...
    def send(self, data: bytes) -> int: ...


class PipeStream:
    """The sandbox end: stdin and stdout of the relay process."""

    def __init__(self, read_fd: int = 0, write_fd: int = 1) -> None:
        self._read, self._write = read_fd, write_fd
        os.set_blocking(read_fd, False)
        os.set_blocking(write_fd, False)

    def fileno(self) -> int:
        return self._read

    def write_fileno(self) -> int:
        return self._write

    def recv(self) -> bytes | None:
        try:
            return os.read(self._read, _READ_SIZE)
        except BlockingIOError:
            return None

    def send(self, data: bytes) -> int:
        try:
            return os.write(self._write, data)
        except BlockingIOError:
            return 0


def _would_block(exc: OSError) -> bool:
    return isinstance(exc, (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError))


class Relay:
    """Moves messages between `sockets` (one per channel, in CHANNELS order) and a stream until the stream ends
    or `stop()`. Runs in one thread, the only one that touches the sockets."""

    def __init__(self, sockets: list[zmq.Socket[bytes]], stream: Stream, *, max_message_bytes: int,
                 initial: bytes = b"") -> None:
        self._sockets, self._stream = sockets, stream
        self._decoder = Decoder(max_message_bytes)
        self._initial = initial
        self._pending = bytearray()
        self._wake_r, self._wake_w = os.pipe()
        self._wake_lock = threading.Lock()
        self._stopping = False
        # iopub goes one way: the server's PUB only sends, the sandbox's SUB only receives.
        self._readable = [sock.type != zmq.PUB for sock in sockets]
        self._poller = zmq.Poller()
        for sock, readable in zip(sockets, self._readable, strict=True):
            if readable:
                self._poller.register(sock, zmq.POLLIN)
        self._poller.register(self._wake_r, zmq.POLLIN)
        self._poller.register(stream.fileno(), zmq.POLLIN)
        # A pipe pair has a second descriptor to write to; a socket is one descriptor both ways.
        self._write_fd: int = getattr(stream, "write_fileno", stream.fileno)()

    @property
    def dropped(self) -> int:
        """Messages from the stream read past for being over the limits."""
        return self._decoder.dropped

    def stop(self) -> None:
        """Ask run() to return; safe from any thread, and after run() has returned."""
        self._stopping = True
        with self._wake_lock:
            if self._wake_w >= 0:
                os.write(self._wake_w, b"x")

    def run(self) -> None:
        try:
            if self._deliver(self._initial):
                while not self._stopping and self._pump():
                    pass
        finally:
            for sock in self._sockets:
                sock.close(linger=0)
            with self._wake_lock:  # a stop() after this must not write to a descriptor reused meanwhile
                os.close(self._wake_r)
                os.close(self._wake_w)
                self._wake_w = -1

    def _pump(self) -> bool:
        """One round: wait for anything, then move what can move. False once the stream has ended."""
        self._watch_writes(bool(self._pending))
        self._poller.poll(_POLL_MS)
        if not self._read_stream():
            return False
        self._read_sockets()
        return self._flush()

    def _watch_writes(self, on: bool) -> None:
        if self._write_fd == self._stream.fileno():
            self._poller.register(self._write_fd, zmq.POLLIN | (zmq.POLLOUT if on else 0))
        else:
            self._poller.register(self._write_fd, zmq.POLLOUT if on else 0)  # 0 unregisters

    def _deliver(self, data: bytes) -> bool:
        for channel, frames in self._decoder.feed(data):
            if self._sockets[channel].type == zmq.SUB:
                continue  # nothing is sent to a kernel on iopub
            try:
                self._sockets[channel].send_multipart(frames, zmq.NOBLOCK)
            except zmq.Again:
                pass  # the reader is not keeping up: dropped, as ZMQ would drop it
        return True

    def _read_stream(self) -> bool:
        # A TLS stream may hold decrypted bytes the poller cannot see: read until it would block.
        while True:
            try:
                data = self._stream.recv()
            except OSError as exc:
                return _would_block(exc)  # otherwise the stream broke
            if data is None:
                return True
            if not data:
                return False
            self._deliver(data)

    def _read_sockets(self) -> None:
        for index, sock in enumerate(self._sockets):
            while self._readable[index] and len(self._pending) < _MAX_PENDING:
                try:
                    frames = sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                self._pending += encode(index, frames)

    def _flush(self) -> bool:
        while self._pending:
            try:
                sent = self._stream.send(bytes(self._pending[:_READ_SIZE]))
            except OSError as exc:
                return _would_block(exc)  # otherwise the stream broke
            if sent == 0:
                return True
            del self._pending[:sent]
        return True


def sandbox_sockets(context: zmq.Context[zmq.Socket[bytes]], ports: list[int]) -> list[zmq.Socket[bytes]]:
    """The sandbox end's sockets, connected to the kernel on loopback, in CHANNELS order."""
    sockets = []
    for name, port in zip(CHANNELS, ports, strict=True):
        sock = context.socket(zmq.SUB if name == "iopub" else zmq.DEALER)
        if name == "iopub":
            sock.setsockopt(zmq.SUBSCRIBE, b"")
        sock.connect(f"tcp://127.0.0.1:{port}")
        sockets.append(sock)
    return sockets


def _handshake(stream: PipeStream) -> bytes | None:
    """Say nothing until the server has spoken: then nothing of ours can sit in its HTTP reader's buffer. What
    came after the greeting, or None if the greeting was wrong."""
    got = b""
    while len(got) < len(HELLO):
        select.select([stream.fileno()], [], [])
        data = stream.recv()
        if data == b"":
            return None
        got += data or b""
    if not got.startswith(HELLO):
        return None
    os.set_blocking(stream.write_fileno(), True)
    os.write(stream.write_fileno(), HELLO)
    os.set_blocking(stream.write_fileno(), False)
    return got[len(HELLO):]


def sandbox_main(argv: list[str]) -> int:
    """The sandbox end: `<max message bytes> <shell> <iopub> <stdin> <control> <hb>` (the kernel's ports)."""
    stream = PipeStream()
    rest = _handshake(stream)
    if rest is None:
        return 1
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sockets = sandbox_sockets(context, [int(port) for port in argv[1:6]])
    Relay(sockets, stream, max_message_bytes=int(argv[0]), initial=rest).run()
    context.destroy(linger=0)
    return 0


if __name__ == "__main__":
    sys.exit(sandbox_main(sys.argv[1:]))
