"""Sandbox bindings keep a per-key lock only while the key is in use (issue 27 item 11): in-process, against
`LocalKernelRuntime`, with a project allowed no sandbox so that no kernel is ever started."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from orchestrator.db import Database
from orchestrator.sandbox import SandboxManager
from orchestrator.sandbox.hosts import Hosts
from orchestrator.sandbox.local_host import LocalFiles, LocalHost
from orchestrator.sandbox.policy import SandboxPolicy
from orchestrator.sandbox.workspace import WorkspaceStore
from orchestrator.services.bindings import SandboxBindings
from orchestrator.services.container_files import ContainerFiles, ContainerFileStore, ScanLimits
from orchestrator.services.exports import ExportLimits, Exports
from orchestrator.services.project_sandboxes import ProjectSandboxes
from orchestrator.services.projects import OverLimit, Owners
from orchestrator.services.sandbox_homes import SandboxHomes
from orchestrator.services.storage import FileStore
from tests.fakes import LocalKernelRuntime


async def test_the_lock_of_a_session_key_goes_when_the_key_is_no_longer_in_use(tmp_path: Path) -> None:
    db = Database(tmp_path / "toolshed.db")
    files = FileStore(db, tmp_path)
    owners = Owners(db)
    workspaces = WorkspaceStore(tmp_path / "s", tmp_path / "r", uid=os.getuid(), quota_bytes=0)
    runtime = LocalKernelRuntime()
    manager = SandboxManager(Hosts([LocalHost(runtime, workspaces)]), SandboxPolicy())
    container_files = ContainerFiles(ContainerFileStore(db), files, lambda _: LocalFiles(workspaces),
                                     Exports(db, files, owners, ExportLimits(1 << 30, 0, 1 << 30)), ScanLimits())
    no_room = ProjectSandboxes(manager, owners, lambda _: 0, SandboxHomes(db, ""))  # each first use fails in the lock
    bindings = SandboxBindings(db, no_room, manager, container_files, files, memory_limit="1g")
    hint = "h" * (64 << 10)  # LibreChat passes its session hint through; the were 2 MB
    try:
        for n in range(300):
            with pytest.raises(OverLimit):
                await bindings.sandbox_for("librechat", f"default/runtime/{n}/{hint}", [], "default")
            await bindings.release("librechat", f"default/exec/{n}")
        assert len(bindings._locks) == 0  # was one lock (and one 64 KiB key) per key ever seen
    finally:
        await manager.close()
        runtime.close()
        db.close()
