"""Threads: an assistant server's conversation id, bound to one sandbox that keeps its state and files.

The binding lives in the database so a restarted server finds each thread's sandbox (and its files) again.
A thread gets its sandbox on its first code execution, so threads that never run code cost nothing.
"""

from __future__ import annotations

import asyncio
import time

from orchestrator.container_files import ContainerFiles
from orchestrator.db import Database
from orchestrator.sandbox import SandboxManager, SandboxNotFound, SandboxSpec
from orchestrator.storage import FileStore

_SCHEMA = """
CREATE TABLE IF NOT EXISTS threads (
    thread_id TEXT PRIMARY KEY,
    container_id TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
-- Files already placed in a sandbox: placed once, then the code owns them (it may change or delete them).
CREATE TABLE IF NOT EXISTS placed_files (
    container_id TEXT NOT NULL,
    file_id TEXT NOT NULL,
    PRIMARY KEY (container_id, file_id)
);
"""


class ThreadSandboxes:
    def __init__(self, db: Database, manager: SandboxManager, container_files: ContainerFiles, files: FileStore,
                 *, memory_limit: str) -> None:
        self._db = db
        self._manager = manager
        self._container_files = container_files
        self._files = files
        self._memory_limit = memory_limit
        self._locks: dict[str, asyncio.Lock] = {}
        db.migrate(_SCHEMA)

    def container_of(self, thread_id: str) -> str | None:
        """The id of the thread's sandbox, if it ever ran code."""
        row = self._db.one("SELECT container_id FROM threads WHERE thread_id = ?", (thread_id,))
        return row[0] if row else None

    async def sandbox_for(self, thread_id: str, file_ids: list[str]) -> str:
        """The thread's sandbox, created on first use, with every file in `file_ids` placed in /mnt/data."""
        for file_id in file_ids:  # FileNotFound before anything is started
            self._files.get(file_id)
        async with self._locks.setdefault(thread_id, asyncio.Lock()):
            container_id = self.container_of(thread_id)
            if container_id is None or not await self._exists(container_id):
                container_id = await self._create(thread_id)
            for file_id in file_ids:
                if not self._db.one("SELECT 1 FROM placed_files WHERE container_id = ? AND file_id = ?",
                                    (container_id, file_id)):
                    await self._container_files.copy_in(container_id, file_id)
                    self._db.execute("INSERT INTO placed_files (container_id, file_id) VALUES (?, ?)",
                                     (container_id, file_id))
        return container_id

    async def _exists(self, container_id: str) -> bool:
        try:
            await self._manager.get(container_id)
            return True
        except SandboxNotFound:  # deleted through the Containers API: the thread starts over
            return False

    async def _create(self, thread_id: str) -> str:
        spec = SandboxSpec(name=thread_id[:256], memory_limit=self._memory_limit,
                           labels={"thread_id": thread_id[:256]})
        sandbox = await self._manager.create(spec)
        self._db.execute("INSERT OR REPLACE INTO threads (thread_id, container_id, created_at) VALUES (?, ?, ?)",
                         (thread_id, sandbox.id, int(time.time())))
        return sandbox.id
