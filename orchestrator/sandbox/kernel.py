"""Talking to one Jupyter kernel over its connection info: readiness, execute-until-idle, interrupt.

The only module that imports jupyter_client. It knows nothing about Docker: the manager passes an `is_alive`
probe so a kernel that dies mid-cell is noticed without waiting for the deadline.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol, cast

import zmq
from jupyter_client.blocking import BlockingKernelClient
from jupyter_client.connect import KernelConnectionInfo
from jupyter_client.session import Session

from orchestrator.sandbox.inbox import Inbox
from orchestrator.sandbox.models import ExecutionError, Output, TextOutput
from orchestrator.sandbox.outputs import Message, OutputCollector, OutputHook, read_message

AliveProbe = Callable[[], Awaitable[bool]]


class Transport(Protocol):
    """What carries a session's sockets to a kernel on another machine (kernel_channel.KernelChannel)."""

    @property
    def open(self) -> bool: ...
    def close(self) -> None: ...


Channel = Literal["shell", "iopub"]

# How often a silent kernel is checked for death while a cell runs.
_ALIVE_CHECK_INTERVAL = 0.5
# Long enough for a kernel descheduled on a loaded machine to get its "idle" out after its reply (the reply goes out
# from the shell thread, "idle" from the iopub thread).
_LOST_AFTER = 2.0
# What jupyter_client raises for a message it cannot verify or decode: a hostile kernel may send anything.
_UNREADABLE = (ValueError, KeyError, TypeError, IndexError, AttributeError)
_LOST_NOTICE = ("\n[the rest of this cell's output was lost: a single output was over the size limit, or came faster "
                "than it could be read; the connection to the kernel was reset]\n")


Outcome = Literal["ok", "error", "timeout", "stuck", "died"]


class KernelNotReady(Exception):
    """The kernel did not answer kernel_info before the deadline, or its container stopped first."""


@dataclass(frozen=True)
class CellResult:
    """How a cell ended, as seen from the kernel protocol."""

    outcome: Outcome
    outputs: tuple[Output, ...]
    error: ExecutionError | None
    truncated_bytes: int


class KernelSession:
    """A client for one kernel, built from its connection info (ports, key, transport).

    jupyter_client gives the connection (socket addresses, the signing session); the sockets are plain ones read
    through `Inbox`. Between cells nothing reads them on the caller's behalf, so a kernel thread that keeps printing
    after its cell returned would pile messages up in this process: until the next cell they are discarded.
    """

    def __init__(self, connection_info: dict[str, Any], context: zmq.Context[zmq.Socket[bytes]],
                 transport: Transport | None = None) -> None:
        self._info, self._context = connection_info, context
        self.transport = transport
        self._connect()
        # Set when a cell ended by its shell reply because "idle" never came: the iopub socket may be dead.
        self._iopub_lost = False

    def _connect(self) -> None:
        client = BlockingKernelClient(context=self._context)
        client.load_connection_info(cast(KernelConnectionInfo, self._info))
        self._session = client.session
        identity = self._session.bsession
        self._inboxes: dict[str, Inbox] = {
            "shell": Inbox(client.connect_shell(identity)), "iopub": Inbox(client.connect_iopub()),
            "control": Inbox(client.connect_control(identity))}
        for inbox in self._inboxes.values():
            # A kernel that stops reading its sockets must not block the event loop on a full send queue.
            inbox.socket.setsockopt(zmq.SNDTIMEO, 0)

    def close(self) -> None:
        self._close_sockets()
        if self.transport is not None:
            self.transport.close()

    def _close_sockets(self) -> None:
        for inbox in self._inboxes.values():
            inbox.close()

    def _send(self, channel: str, msg_type: str, content: dict[str, Any]) -> str | None:
        """Sign and send a request; its msg_id, or None if the kernel is not taking requests (its queue is full)."""
        try:
            sent = self._session.send(self._inboxes[channel].socket, msg_type, content)
        except zmq.Again:
            return None
        return cast(str, sent["header"]["msg_id"])

    async def wait_ready(self, timeout: float, is_alive: AliveProbe | None = None) -> None:
        """Block until the kernel answers kernel_info and iopub delivers; raise KernelNotReady at the deadline, or
        as soon as `is_alive` says the kernel is gone (a container killed mid-start is not waited on for a minute).
        Heartbeats falsely report death under load, so readiness is probed with real requests."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg_id = self._send("shell", "kernel_info_request", {})
            # kernel_info makes the kernel publish its status; seeing it proves our iopub subscription is live.
            if msg_id is not None and (await self._await_reply(msg_id, min(1.0, deadline - time.monotonic()))
                    and await self._drain_iopub(min(0.5, max(deadline - time.monotonic(), 0.01)))):
                return
            if is_alive is not None and not await is_alive():
                raise KernelNotReady("the kernel's container stopped while it started")
            if msg_id is None:
                await asyncio.sleep(_ALIVE_CHECK_INTERVAL)
        raise KernelNotReady(f"kernel did not become ready within {timeout:.0f}s")

    async def _await_reply(self, msg_id: str, timeout: float) -> bool:
        end = time.monotonic() + max(timeout, 0.01)
        while (left := end - time.monotonic()) > 0:
            reply = await self._receive("shell", left)
            if reply is not None and reply.parent_id == msg_id:
                return True
        return False

    async def _drain_iopub(self, timeout: float) -> bool:
        got_any = False
        while await self._receive("iopub", timeout if not got_any else 0.05) is not None:
            got_any = True
        return got_any

    async def _receive(self, channel: Channel, timeout: float) -> Message | None:
        """The next message of one channel; None when none came in time. An unreadable message comes back as
        an empty one, so callers waiting for "anything" still see that something arrived."""
        frames = await self._inboxes[channel].receive(timeout)
        if frames is None:
            return None
        try:
            msg = _verified(self._session, frames)
        except _UNREADABLE:
            return Message(None, "", {})
        return read_message(msg) or Message(None, "", {})

    async def interrupt(self) -> None:
        """Ask the kernel to raise KeyboardInterrupt in the running cell (message-mode interrupt)."""
        self._send("control", "interrupt_request", {})

    async def execute(
        self,
        code: str,
        timeout: float,
        *,
        interrupt_grace: float,
        max_text_bytes: int,
        on_output: OutputHook | None = None,
        is_alive: AliveProbe | None = None,
    ) -> CellResult:
        """Run `code`, collecting outputs until the kernel reports idle or dies.

        At `timeout` the cell is interrupted; outputs keep arriving for `interrupt_grace` more seconds. The
        outcome is "timeout" if the interrupt brought the kernel back to idle, "stuck" if it did not.
        """
        self._discard(False)
        collector = OutputCollector(max_text_bytes, on_output)
        try:
            if self._iopub_lost and not await self._reconnect():
                return CellResult("died", (), None, 0)
            msg_id = self._send("shell", "execute_request", {
                "code": code, "silent": False, "store_history": True, "user_expressions": {}, "allow_stdin": False,
                "stop_on_error": True})
            if msg_id is None:
                return CellResult("stuck", (), None, 0)
            ended = await self._collect_until_idle(msg_id, time.monotonic() + timeout, collector, is_alive)
            if ended == "lost":
                self._iopub_lost = True
                await collector.add(TextOutput("notice", _LOST_NOTICE))
            outcome: Outcome = "died" if ended == "died" else "ok"
            if ended == "timeout":
                await self.interrupt()
                after = await self._collect_until_idle(msg_id, time.monotonic() + interrupt_grace, collector,
                                                       is_alive)
                outcome = "stuck" if after == "timeout" else "died" if after == "died" else "timeout"
            await collector.finish()
        finally:
            self._discard(True)
        if outcome == "ok" and collector.error is not None:
            outcome = "error"
        return CellResult(outcome, tuple(collector.outputs), collector.error, collector.truncated_bytes)

    async def _reconnect(self) -> bool:
        """New sockets to the same kernel: ZMQ does not reconnect a subscription it dropped for an oversized
        frame. False if the kernel does not answer on them."""
        self._close_sockets()
        self._connect()
        try:
            await self.wait_ready(5.0)
        except KernelNotReady:
            return False
        self._iopub_lost = False
        return True

    async def _collect_until_idle(
        self,
        msg_id: str,
        deadline: float,
        collector: OutputCollector,
        is_alive: AliveProbe | None,
    ) -> Literal["ok", "timeout", "died", "lost"]:
        next_check = time.monotonic() + _ALIVE_CHECK_INTERVAL
        replied_at: float | None = None
        while (left := deadline - time.monotonic()) > 0:
            message = await self._receive("iopub", min(left, _ALIVE_CHECK_INTERVAL))
            if message is not None and message.parent_id == msg_id:
                if message.kind == "status" and message.content.get("execution_state") == "idle":
                    return "ok"
                await collector.add_message(message)
            if (now := time.monotonic()) >= next_check:
                next_check = now + _ALIVE_CHECK_INTERVAL
                # The kernel sends "idle" just after the shell reply; none for _LOST_AFTER after the reply means ZMQ
                # dropped it (a full queue, or an oversized message that cost the connection).
                if replied_at is not None and now - replied_at >= _LOST_AFTER:
                    return "lost"
                if replied_at is None and await self._replied(msg_id):
                    replied_at = now
                if is_alive is not None and not await is_alive():
                    return "died"
        return "timeout"

    async def _replied(self, msg_id: str) -> bool:
        """Whether the execute reply to `msg_id` is among the shell messages waiting now."""
        found = False
        while (reply := await self._receive("shell", 0)) is not None:
            found = found or (reply.parent_id == msg_id and reply.kind == "execute_reply")
        return found

    def _discard(self, on: bool) -> None:
        for inbox in self._inboxes.values():
            inbox.discard(on)


def _verified(session: Session, frames: list[bytes]) -> dict[str, Any]:
    """The header, parent header and content of a signed message, as `Session.deserialize` checks them (HMAC,
    no replayed signature), without what the engine never reads: ISO dates parsed out of both headers and the
    protocol-version adaptation, which were most of the cost of reading a message. ValueError if it fails."""
    signed = cast(list[bytes], session.feed_identities(frames)[1])
    if len(signed) < 5:
        raise ValueError("malformed message")
    signature = signed[0]
    if session.auth is not None:
        if not signature or signature in session.digest_history:
            raise ValueError("unsigned or replayed message")
        session._add_digest(signature)  # the replay history deserialize() keeps
        if not hmac.compare_digest(signature, session.sign(signed[1:5])):
            raise ValueError("invalid signature")
    return {"header": session.unpack(signed[1]), "parent_header": session.unpack(signed[2]),
            "content": session.unpack(signed[4])}


def new_connection_info(ip_prefix: str) -> dict[str, Any]:
    """Fresh ipc connection info: a new HMAC key and new socket names for every kernel start. Rotating both means
    a request still queued for a dead kernel can never be delivered to its successor."""
    base = secrets.randbelow(1 << 20) * 8
    ports = {f"{name}_port": base + n for n, name in enumerate(("shell", "iopub", "stdin", "control", "hb"), 1)}
    return {"transport": "ipc", "ip": ip_prefix, **ports, "key": secrets.token_hex(32),
            "signature_scheme": "hmac-sha256", "kernel_name": "python3"}


class KernelConnector:
    """Makes KernelSessions that share one ZMQ context (one IO thread for all sandboxes).

    Every socket refuses a frame over `max_message_bytes` (ZMQ drops the connection, which reconnects) and
    queues at most `queue_length` messages, so what one kernel can make this process hold stays bounded.
    """

    def __init__(self, *, max_message_bytes: int = 16 << 20, queue_length: int = 8) -> None:
        self._context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self._context.setsockopt(zmq.MAXMSGSIZE, max_message_bytes)
        self._context.setsockopt(zmq.RCVHWM, queue_length)

    def connect(self, connection_info: dict[str, Any], transport: Transport | None = None) -> KernelSession:
        return KernelSession(connection_info, self._context, transport)

    def close(self) -> None:
        # destroy, not term: term() blocks for as long as any session's sockets are still open.
        self._context.destroy(linger=0)
