"""Which host each sandbox lives on, where a new one goes, and which hosts are down (issue 33).

A new sandbox goes to the host with the most memory left once every sandbox's limit there is counted. A host that
stops answering is down: no sandbox is placed on it, and a sandbox that lived there is placed anew at its next
start (on a host that answers), with its files and kernel state lost.
"""

from __future__ import annotations

import logging

from orchestrator.sandbox.errors import EngineUnavailable
from orchestrator.sandbox.host import SandboxFiles, SandboxHost

log = logging.getLogger("toolshed.sandbox")


class Hosts:
    def __init__(self, hosts: list[SandboxHost]) -> None:
        if not hosts:
            raise ValueError("at least one sandbox host is needed")
        self._hosts = {host.name: host for host in hosts}
        self._home: dict[str, str] = {}
        self._memory: dict[str, int] = {}
        self._capacity: dict[str, int] = {}
        self._down: set[str] = set()

    def all(self) -> list[SandboxHost]:
        return list(self._hosts.values())

    def up(self) -> list[SandboxHost]:
        return [host for name, host in self._hosts.items() if name not in self._down]

    def of(self, sandbox_id: str) -> SandboxHost:
        """The host the sandbox lives on (the first host for one never placed: with one host, every sandbox)."""
        return self._hosts[self._home.get(sandbox_id, next(iter(self._hosts)))]

    def files_of(self, sandbox_id: str) -> SandboxFiles:
        return self.of(sandbox_id).files

    def is_placed(self, sandbox_id: str) -> bool:
        return sandbox_id in self._home

    def home(self, sandbox_id: str, host: SandboxHost, memory_bytes: int) -> None:
        self._memory[sandbox_id] = memory_bytes
        self._home[sandbox_id] = host.name

    def forget(self, sandbox_id: str) -> None:
        self._home.pop(sandbox_id, None)
        self._memory.pop(sandbox_id, None)

    def unmeasured(self) -> list[SandboxHost]:
        """Up hosts whose memory is not known yet: `measure` them (blocking) before `place`."""
        return [host for host in self.up() if host.name not in self._capacity]

    def measure(self, host: SandboxHost) -> None:
        """Ask the host's memory, once; a host that does not answer stays unmeasured (nothing is placed there)."""
        try:
            self._capacity[host.name] = host.memory_bytes()
        except EngineUnavailable as exc:
            log.warning("sandbox host %s did not say its memory: %s", host.name, exc)

    def place(self, sandbox_id: str, memory_bytes: int) -> SandboxHost:
        """The up, measured host with the most memory left, now the sandbox's home. On the event loop (the
        bookkeeping is not shared with threads). EngineUnavailable when no host is up and measured."""
        candidates = [host for host in self.up() if host.name in self._capacity]
        if not candidates:
            raise EngineUnavailable("No sandbox host is answering; retry shortly.")
        used: dict[str, int] = {}
        for sandbox, name in self._home.items():
            used[name] = used.get(name, 0) + self._memory.get(sandbox, 0)
        host = max(candidates, key=lambda h: self._capacity[h.name] - used.get(h.name, 0))
        self.home(sandbox_id, host, memory_bytes)
        return host

    def home_of(self, sandbox_id: str) -> SandboxHost | None:
        """The host the sandbox lives on, if it has been placed."""
        name = self._home.get(sandbox_id)
        return None if name is None else self._hosts[name]

    def is_watched(self, host: SandboxHost) -> bool:
        """Whether the host can be down (SandboxHost.watched)."""
        return host.watched

    def on(self, host: SandboxHost) -> list[str]:
        return [sandbox_id for sandbox_id, name in self._home.items() if name == host.name]

    def leave_out(self, host: SandboxHost) -> None:
        """Use the host no more in this process (its sandboxes could not be recovered: nothing of it may be
        taken for an orphan and removed)."""
        if len(self._hosts) > 1:
            del self._hosts[host.name]
            log.warning("sandbox host %s is left out until the server restarts", host.name)

    def is_down(self, host: SandboxHost) -> bool:
        return host.name in self._down

    def mark_down(self, host: SandboxHost) -> bool:
        """True if the host was up until now."""
        if host.name in self._down:
            return False
        self._down.add(host.name)
        log.warning("sandbox host %s stopped answering; its sandboxes are lost", host.name)
        return True

    def mark_up(self, host: SandboxHost) -> bool:
        """True if the host was down until now."""
        if host.name not in self._down:
            return False
        self._down.discard(host.name)
        log.warning("sandbox host %s answers again", host.name)
        return True
