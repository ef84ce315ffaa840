"""/mnt/data of sandboxes on an engine that shares no filesystem with the server (issue 33): Docker or Kubernetes.

The files live on a tmpfs volume mounted in the sandbox and in its keeper container. A sandbox's operations go to
one long-lived exec in its keeper running file_agent.py, which applies safefs's own functions to /mnt/data under
the sandbox uid: the local host's checks, made where the files are, with no power beyond the sandbox's own. A
request on the open exec costs a round trip; a new exec costs ~100 ms over TLS, and every cell ends in a scan.
`python3 -I` and the working dir "/" keep the agent from importing what the sandbox planted in /mnt/data; -S
leaves out the image's packages and their .pth files. One operation at a time per sandbox; an agent left in an
unknown state (an operation cut short, garbled, timed out) is closed, and the next operation starts another.
Everything read back is bounded: status lines, chunks, a scan's JSON (16 MiB), stderr (the link keeps its end).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Generator, Iterable
from pathlib import Path
from typing import Any, TypeVar

import docker
import docker.errors
import requests.exceptions

from orchestrator.sandbox import file_agent, safefs
from orchestrator.sandbox.agent_channel import SCAN_LIMIT, AgentExec, AgentSlot
from orchestrator.sandbox.errors import EngineUnavailable, SandboxNotFound
from orchestrator.sandbox.kernel_channel import ExecLink, start_exec

_AGENT = Path(file_agent.__file__).read_text()
_SAFEFS = Path(safefs.__file__).read_text()
_T = TypeVar("_T")
# How long a read's caller may keep the agent without taking a chunk (an iterator neither finished nor closed)
# before an operation waiting for that sandbox closes it and starts another agent.
LENT_LIMIT = 60.0
# A request is one frame of at most MAX_INPUT_CHUNK bytes; no real path comes near this.
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


def _file_stat(value: Any) -> safefs.FileStat:
    if not (isinstance(value, list) and len(value) == 3 and all(type(v) is int for v in value)):
        raise EngineUnavailable(f"the file agent sent a malformed stat: {str(value)[:200]}")
    return safefs.FileStat(*value)


# The agent's command: safefs's source travels with it, so the image needs nothing of the server's.
AGENT_COMMAND = ["python3", "-I", "-S", "-c", _AGENT, _SAFEFS]
# Opens the agent (AGENT_COMMAND, as the sandbox uid, in "/") where a sandbox's files are; SandboxNotFound when
# they are gone, EngineUnavailable when the engine cannot be reached.
AgentOpener = Callable[[str], ExecLink]
# What a remote host keeps beside a sandbox, in the /tmp of the container that holds its files (a keeper, or a
# pod's files container), out of the kernel's reach: the server's record of it, and its kernel's connection.
KEPT_META, KEPT_CONNECTION = "/tmp/toolshed-meta.json", "/tmp/toolshed-connection.json"


def keep_command(path: str, value: dict[str, Any]) -> list[str]:
    """The command that writes `value` to one of those files."""
    return ["python3", "-I", "-c", "import sys\nopen(sys.argv[1], 'w').write(sys.argv[2])", path, json.dumps(value)]


def docker_agents(api: docker.APIClient, keeper_of: Callable[[str], str], *, uid: int) -> AgentOpener:
    """Agents in the sandboxes' keeper containers of one Docker engine."""
    def start(sandbox_id: str) -> ExecLink:
        try:
            return start_exec(api, keeper_of(sandbox_id), AGENT_COMMAND, user=f"{uid}:{uid}", workdir="/")
        except docker.errors.NotFound as exc:
            raise SandboxNotFound(sandbox_id) from exc
        except docker.errors.APIError as exc:
            if exc.status_code == 409:  # the keeper is stopped, or being removed: its tmpfs is gone with it
                raise SandboxNotFound(sandbox_id) from exc
            raise EngineUnavailable(f"Docker engine error reaching sandbox {sandbox_id}'s files: {exc}") from exc
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise EngineUnavailable(f"Docker engine unreachable for sandbox {sandbox_id}'s files: {exc}") from exc
    return start


class RemoteFiles:
    """/mnt/data of sandboxes on one engine, reached through a file agent per sandbox that `open_agent` starts."""

    def __init__(self, open_agent: AgentOpener) -> None:
        self._open_agent = open_agent
        self._guard, self._slots = threading.Lock(), dict[str, AgentSlot]()  # slots: one per sandbox used

    def _start(self, sandbox_id: str) -> AgentExec:
        return AgentExec(sandbox_id, self._open_agent(sandbox_id))

    def _hold(self, sandbox_id: str) -> AgentSlot:
        """The sandbox's slot, locked; taken from a reader that kept it past LENT_LIMIT without taking a chunk."""
        while True:
            with self._guard:
                slot = self._slots.setdefault(sandbox_id, AgentSlot())
            if slot.lock.acquire(timeout=min(LENT_LIMIT, 1.0)):
                if not slot.evicted:
                    return slot
                slot.lock.release()  # forgotten or taken over meanwhile: the next turn finds its successor
                continue
            with self._guard:
                if self._slots.get(sandbox_id) is not slot or not slot.stale(LENT_LIMIT):
                    continue
                del self._slots[sandbox_id]
            slot.evict()

    def _release(self, slot: AgentSlot) -> None:
        if slot.evicted or (slot.exec is not None and not slot.exec.idle):
            slot.drop()  # cut short or broken: whatever the agent is doing, a fresh one is the known state
        slot.lock.release()

    def _call(self, sandbox_id: str, use: Callable[[AgentExec], _T], *, retry: bool = True,
              keep: bool = False) -> tuple[AgentSlot, AgentExec, _T]:
        """`use` of the sandbox's agent; the slot stays locked if `keep` and `use` succeeded. A kept agent that
        fails before answering (killed, its connection dropped while idle) gets one more try with a fresh one
        (if `retry`: the request can be sent again)."""
        while True:
            slot = self._hold(sandbox_id)
            run, fresh = slot.exec, slot.exec is None or not slot.exec.usable()
            try:
                if run is None or fresh:
                    slot.drop()
                    slot.exec = run = self._start(sandbox_id)
                result = use(run)
            except SandboxNotFound:
                self._release(slot)
                self.forget(sandbox_id)
                raise
            except EngineUnavailable:
                self._release(slot)
                if fresh or not retry or run is None or run.answered or slot.evicted:
                    raise
                retry = False
                continue
            except BaseException:
                self._release(slot)
                raise
            if not keep:
                self._release(slot)
            return slot, run, result

    def write(self, sandbox_id: str, path: str, chunks: Iterable[bytes]) -> safefs.FileStat:
        """Create or replace /mnt/data/`path` (folders made as needed) as safefs.write_file does; its stat.
        IsADirectoryError when a folder is in the way, OSError with the agent's errno (ENOSPC: the volume is
        full), safefs.UnsafePath for a bad path or a result that is not a regular file."""
        message = file_agent.request("write", _checked(path))

        def use(run: AgentExec) -> safefs.FileStat:
            run.send(message, chunks)
            return _file_stat(run.status().get("stat"))
        # A list can be sent again; an iterator's chunks, once taken, cannot.
        return self._call(sandbox_id, use, retry=isinstance(chunks, list | tuple))[2]

    def read(self, sandbox_id: str, path: str) -> tuple[safefs.FileStat, Generator[bytes, None, None]]:
        """A regular file's stat and its bytes, streamed; safefs.UnsafePath for anything else or nothing. The
        iterator holds the sandbox's agent until it is exhausted, closed or dropped (or left LENT_LIMIT)."""
        message = file_agent.request("read", _checked(path))
        slot, run, stat = self._call(sandbox_id, lambda run: _file_stat(run.ask(message, final=False).get("stat")),
                                     keep=True)
        chunks = self._stream(slot, run.chunks(stat.size))
        run.lent_since = time.monotonic()
        next(chunks)  # cannot fail: from here on, closing or dropping the iterator lets the agent go
        return stat, chunks

    def _stream(self, slot: AgentSlot, chunks: Generator[bytes, None, None]) -> Generator[bytes, None, None]:
        try:
            yield b""
            yield from chunks
        finally:
            self._release(slot)

    def remove(self, sandbox_id: str, path: str) -> bool:
        """Unlink /mnt/data/`path` (a link itself, never its target); False if it was not there."""
        message = file_agent.request("remove", _checked(path))
        removed = self._call(sandbox_id, lambda run: run.ask(message).get("removed"))[2]
        if not isinstance(removed, bool):
            raise EngineUnavailable(f"the file agent sent a malformed answer to remove: {str(removed)[:200]}")
        return removed

    def scan(self, sandbox_id: str, *, max_entries: int, max_depth: int) -> safefs.Scan | None:
        """safefs.scan of /mnt/data, made inside; None when the keeper is gone. The agent leaves out entries
        past SCAN_LIMIT bytes of answer (the scan is then not complete); an answer beyond it is refused."""
        message = file_agent.request("scan", str(max_entries), str(max_depth), str(SCAN_LIMIT - 1024))
        try:
            payload = self._call(sandbox_id, lambda run: run.ask(message, SCAN_LIMIT))[2]
        except SandboxNotFound:
            return None
        try:
            entries, complete = file_agent.parse_scan(payload)
        except ValueError as exc:
            raise EngineUnavailable(f"the file agent sent {exc}") from exc
        return safefs.Scan({name: _file_stat(stat) for name, stat in entries}, complete)

    def glance(self, sandbox_id: str, *, max_entries: int, max_depth: int) -> safefs.Scan | None:
        """None: no scan of a remote host is cheap enough for the event loop (host.SandboxFiles)."""
        return None

    def forget(self, sandbox_id: str) -> None:
        """Close the sandbox's agent (its files are being discarded); an operation holding it fails."""
        with self._guard:
            slot = self._slots.pop(sandbox_id, None)
        if slot is not None:
            slot.evict()

    def close(self) -> None:
        with self._guard:
            slots, self._slots = list(self._slots.values()), {}
        for slot in slots:
            slot.evict()
