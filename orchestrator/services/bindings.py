"""Sandbox bindings: a (scope, key) pair, such as ("tool_calls", an assistant server's thread id), bound to one
sandbox that keeps its state and files.

Each face binds in its own scope, so the same key in two faces never shares a sandbox. The binding lives in the
database, so a restarted server finds each key's sandbox (and its files) again. A key gets its sandbox on its
first code execution, so keys that never run code cost nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from orchestrator.db import Database
from orchestrator.errors import ServiceError
from orchestrator.sandbox import SandboxManager, SandboxNotFound, SandboxSpec
from orchestrator.services.container_files import ContainerFiles
from orchestrator.services.project_sandboxes import ProjectSandboxes
from orchestrator.services.storage import FileStore

TOOL_CALLS = "tool_calls"
log = logging.getLogger("toolshed.bindings")


@dataclass
class _Held:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0  # holding it or waiting for it


class KeyLocks:
    """One lock per key, kept only while somebody holds or waits for it: keys come from callers (a LibreChat
    session hint may be megabytes), so a lock kept for every key ever seen grew without bound (issue 27 item 11)."""

    def __init__(self) -> None:
        self._held: dict[tuple[str, str], _Held] = {}

    def __len__(self) -> int:
        return len(self._held)

    @contextlib.asynccontextmanager
    async def hold(self, key: tuple[str, str]) -> AsyncIterator[None]:
        held = self._held.setdefault(key, _Held())
        held.users += 1
        try:
            async with held.lock:
                yield
        finally:
            held.users -= 1
            if held.users == 0:
                del self._held[key]


class SandboxBindings:
    def __init__(self, db: Database, sandboxes: ProjectSandboxes, manager: SandboxManager,
                 container_files: ContainerFiles, files: FileStore, *, memory_limit: str) -> None:
        self._db = db
        self._sandboxes = sandboxes
        self._manager = manager
        self._container_files = container_files
        self._files = files
        self._memory_limit = memory_limit
        self._locks = KeyLocks()
        self._making: set[str] = set()  # sandboxes made for a key and not bound yet
        self._sweeper: asyncio.Task[None] | None = None

    def container_of(self, scope: str, key: str) -> str | None:
        """The id of the key's sandbox, if it ever ran code."""
        row = self._db.one("SELECT container_id FROM sandbox_bindings WHERE scope = ? AND key = ?", (scope, key))
        return row[0] if row else None

    async def sandbox_for(self, scope: str, key: str, file_ids: list[str], project: str) -> str:
        """The key's sandbox, created on first use (as `project`'s), with every file in `file_ids` placed in
        /mnt/data (once: then the code owns it, and may change or delete it)."""
        for file_id in file_ids:  # FileNotFound before anything is started
            self._files.get(file_id)
        async with self._locks.hold((scope, key)):
            container_id = self.container_of(scope, key)
            if container_id is None or not await self._exists(container_id):
                container_id = await self._create(scope, key, project, previous=container_id)
            for file_id in file_ids:
                if not self._db.one("SELECT 1 FROM placed_files WHERE container_id = ? AND file_id = ?",
                                    (container_id, file_id)):
                    await self._container_files.copy_in(container_id, file_id)
                    self._db.execute("INSERT INTO placed_files (container_id, file_id) VALUES (?, ?)",
                                     (container_id, file_id))
        return container_id

    async def release(self, scope: str, key: str) -> None:
        """Delete the key's sandbox and forget it (the sandbox of a one-off execution, a deleted thread's)."""
        async with self._locks.hold((scope, key)):  # a sandbox being made for the key now is deleted too
            container_id = self.container_of(scope, key)
            self._db.execute("DELETE FROM sandbox_bindings WHERE scope = ? AND key = ?", (scope, key))
        if container_id is None:
            return
        self._db.execute("DELETE FROM placed_files WHERE container_id = ?", (container_id,))
        with contextlib.suppress(SandboxNotFound):
            await self._manager.delete(container_id)
        self._container_files.forget_container(container_id)

    async def _exists(self, container_id: str) -> bool:
        try:
            await self._manager.get(container_id)
            return True
        except SandboxNotFound:  # deleted through the Containers API: the key starts over
            return False

    async def _carry(self, previous: str, container_id: str) -> None:
        """The key's sandbox is not on this server: another replica made it, or it went with its replica or data
        dir. Its files move to the new sandbox (every one with a stored copy, at its path); its kernel's memory
        does not. Carrying files beats forwarding each call to the replica that made it: it works as well when
        that replica is dead, and the files are the state the thread's messages point at."""
        restored = set()
        for record in self._container_files.store.all(previous):
            if record.file_id is None or not self._files.exists(record.file_id):
                continue
            try:
                await self._container_files.restore(container_id, record, record.file_id)
                restored.add(record.file_id)
            except (OSError, ServiceError) as exc:  # a copy this replica cannot read (no shared bucket), a full disk
                log.warning("could not carry %s into %s: %s", record.path, container_id, exc)
        placed = {row[0] for row in self._db.all("SELECT file_id FROM placed_files WHERE container_id = ?",
                                                 (previous,))}
        for file_id in placed & restored:  # the others are placed again, from their Files-API copies
            self._db.execute("INSERT INTO placed_files (container_id, file_id) VALUES (?, ?)", (container_id, file_id))
        self._db.execute("DELETE FROM placed_files WHERE container_id = ?", (previous,))
        self._container_files.forget_container(previous)

    async def _create(self, scope: str, key: str, project: str, previous: str | None) -> str:
        """A new sandbox for the key, bound to it once `previous`'s files (if any) are in it."""
        spec = SandboxSpec(name=key[:256], memory_limit=self._memory_limit, labels={"scope": scope, "key": key[:256]})
        sandbox = await self._sandboxes.create(project, spec)
        self._making.add(sandbox.id)
        try:
            if previous is not None:
                await self._carry(previous, sandbox.id)
            self._db.execute("INSERT INTO sandbox_bindings (scope, key, container_id, created_at) VALUES (?, ?, ?, ?) "
                             "ON CONFLICT (scope, key) DO UPDATE SET container_id = excluded.container_id, "
                             "created_at = excluded.created_at", (scope, key, sandbox.id, int(time.time())))
        finally:
            self._making.discard(sandbox.id)
        return sandbox.id

    async def sweep_unbound(self) -> list[str]:
        """Delete this server's key sandboxes that no key is bound to any more: with replicas, the key's next call
        reached another replica, which made a sandbox of its own and carried the files there. Returns their ids."""
        swept = []
        for sandbox in await self._manager.list():
            if "scope" not in sandbox.labels or sandbox.id in self._making:
                continue
            if self._db.one("SELECT 1 FROM sandbox_bindings WHERE container_id = ?", (sandbox.id,)) is None:
                with contextlib.suppress(SandboxNotFound):
                    await self._manager.delete(sandbox.id)
                swept.append(sandbox.id)
        return swept

    def sweep_every(self, seconds: float) -> None:
        """With replicas on one database: sweep this server's unbound key sandboxes in the background."""
        async def loop() -> None:
            while True:
                await asyncio.sleep(seconds)
                try:
                    swept = await self.sweep_unbound()
                except Exception:  # a database that did not answer this time: the next round tries again
                    log.exception("sweeping unbound sandboxes failed")
                    continue
                if swept:
                    log.info("deleted %d sandboxes whose keys moved to another replica", len(swept))

        self._sweeper = asyncio.create_task(loop())

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
