"""One kernel socket read on the event loop through its file descriptor, without pyzmq's asyncio layer.

pyzmq's asyncio sockets make futures, poller registrations and flag enums for every wait and every read; with 50
busy sandboxes they were the largest part of the server's CPU per cell. Here a plain socket's descriptor stays
registered with the loop for the socket's life, a queued message is taken at once, and a wait is one future.
"""

from __future__ import annotations

import asyncio
from typing import cast

import zmq

# Between cells a socket is emptied this many frames at a time, with a pause between batches, so a kernel that
# floods its sockets costs the server bounded CPU; what it sends meanwhile is dropped by ZMQ once the queue is full.
_DISCARD_BATCH = 64
_DISCARD_PAUSE = 0.01


class Inbox:
    """The messages of one ZMQ socket.

    ZMQ's descriptor is edge-triggered: it says "the socket's state may have changed", and only reading the
    socket's EVENTS (or receiving) re-arms it. So every wake-up reads EVENTS, and a wait starts only after a receive
    found nothing and EVENTS still shows nothing, so no message can sit queued behind an edge already consumed.
    """

    def __init__(self, socket: zmq.Socket[bytes]) -> None:
        self.socket = socket
        self._loop = asyncio.get_running_loop()
        self._fd = cast(int, socket.getsockopt(zmq.FD))
        self._waiter: asyncio.Future[None] | None = None
        self._discarding = False
        self._next_batch: asyncio.TimerHandle | None = None
        self._loop.add_reader(self._fd, self._on_signal)

    def take(self) -> list[bytes] | None:
        """The next queued message, if there is one (never waits)."""
        try:
            return self.socket.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            return None

    async def receive(self, timeout: float) -> list[bytes] | None:
        """The next message, waiting up to `timeout` seconds for one; None if none came."""
        deadline = self._loop.time() + timeout
        while (frames := self.take()) is None:
            left = deadline - self._loop.time()
            if left <= 0:
                return None
            if self._readable():
                continue
            waiter = self._waiter = self._loop.create_future()
            timer = self._loop.call_later(left, _settle, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None
        return frames

    def discard(self, on: bool) -> None:
        """While on, everything that arrives is thrown away (between cells, when nobody reads the socket)."""
        self._discarding = on
        if self._next_batch is not None:
            self._next_batch.cancel()
            self._next_batch = None
        if on:
            self._discard_batch()

    def close(self) -> None:
        self._discarding = False
        if self._next_batch is not None:
            self._next_batch.cancel()
        self._loop.remove_reader(self._fd)
        if self._waiter is not None:
            _settle(self._waiter)
        self.socket.close(linger=0)

    def _readable(self) -> bool:
        try:
            return bool(cast(int, self.socket.getsockopt(zmq.EVENTS)) & zmq.POLLIN)
        except zmq.ZMQError:  # closed under us
            return False

    def _on_signal(self) -> None:
        if not self._readable():
            return
        if self._discarding:
            if self._next_batch is None:
                self._discard_batch()
        elif self._waiter is not None:
            _settle(self._waiter)

    def _discard_batch(self) -> None:
        self._next_batch = None
        if not self._discarding:
            return
        for _ in range(_DISCARD_BATCH):
            try:
                self.socket.recv(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            except zmq.ZMQError:
                return  # closed under us
        self._next_batch = self._loop.call_later(_DISCARD_PAUSE, self._discard_batch)


def _settle(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
