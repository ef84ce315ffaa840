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
        self._home[sandbox_id], self._memory[sandbox_id] = host.name, memory_bytes

    def forget(self, sandbox_id: str) -> None:
        self._home.pop(sandbox_id, None)
        self._memory.pop(sandbox_id, None)

    def place(self, sandbox_id: str, memory_bytes: int) -> SandboxHost:
        """The sandbox's host if it has one that is up; else the up host with the most memory left (blocking: a
        host's memory is asked once). EngineUnavailable when every host is down."""
        home = self._home.get(sandbox_id)
        if home is not None and home not in self._down:
            return self._hosts[home]
        candidates = self.up()
        if not candidates:
            raise EngineUnavailable("No sandbox host is answering; retry shortly.")
        host = max(candidates, key=self._free)
        self.home(sandbox_id, host, memory_bytes)
        return host

    def _free(self, host: SandboxHost) -> int:
        if host.name not in self._capacity:
            self._capacity[host.name] = host.memory_bytes()
        used = sum(self._memory[s] for s, name in self._home.items() if name == host.name)
        return self._capacity[host.name] - used

    def on(self, host: SandboxHost) -> list[str]:
        return [sandbox_id for sandbox_id, name in self._home.items() if name == host.name]

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
