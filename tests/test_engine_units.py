"""The sandbox manager's own logic, in-process and fast: cells, reclaim, the cap, the pool, recovery, the
watcher and cancellation, against `LocalKernelRuntime` (real local kernels, no Docker). The docker tier proves
the same behaviours against real containers."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import pytest_asyncio
import requests.exceptions

from orchestrator.sandbox import SandboxManager, SandboxSpec
from orchestrator.sandbox.errors import EngineUnavailable
from orchestrator.sandbox.hosts import Hosts
from orchestrator.sandbox.local_host import LocalFiles, LocalHost
from orchestrator.sandbox.models import TextOutput
from orchestrator.sandbox.policy import SandboxPolicy
from orchestrator.sandbox.runtime import engine_error
from orchestrator.sandbox.workspace import WorkspaceStore
from tests.fakes import LocalKernelRuntime

pytestmark = pytest.mark.kernel

Make = Callable[..., SandboxManager]


class Recorder:
    """LifecycleHooks that remember what they were told."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def acquired(self, source: str, seconds: float) -> None:
        self.events.append(("acquired", source))

    def waited_for_capacity(self, seconds: float) -> None:
        pass

    def reclaimed(self, reason: str) -> None:
        self.events.append(("reclaimed", reason))


@pytest_asyncio.fixture
async def parts() -> AsyncIterator[tuple[LocalKernelRuntime, WorkspaceStore, list[SandboxManager]]]:
    # A short root: the kernels' AF_UNIX socket paths must stay under 107 bytes.
    root = Path(tempfile.mkdtemp(prefix="ts", dir="/tmp"))
    runtime = LocalKernelRuntime()
    workspaces = WorkspaceStore(root / "s", root / "r", uid=os.getuid(), quota_bytes=0)
    managers: list[SandboxManager] = []
    yield runtime, workspaces, managers
    for manager in managers:
        await manager.close()
    runtime.close()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def make(parts: tuple[LocalKernelRuntime, WorkspaceStore, list[SandboxManager]]) -> Make:
    runtime, workspaces, managers = parts

    def build(hooks: Recorder | None = None, **policy: object) -> SandboxManager:
        settings = {"kernel_start_timeout": 30.0, "capacity_wait": 2.0, "interrupt_grace": 1.0, **policy}
        manager = SandboxManager(Hosts([LocalHost(runtime, workspaces)]), SandboxPolicy(**settings), hooks=hooks)  # type: ignore[arg-type]
        managers.append(manager)
        return manager

    return build


def text(execution: object) -> str:
    return "".join(o.text for o in execution.outputs if isinstance(o, TextOutput))  # type: ignore[attr-defined]


async def test_state_persists_between_cells(make: Make) -> None:
    manager = make()
    sandbox = await manager.create(SandboxSpec())
    await manager.execute(sandbox.id, "x = 41")
    assert text(await manager.execute(sandbox.id, "print(x + 1)")) == "42\n"


async def test_an_idle_sandbox_is_reclaimed_with_its_files_and_says_so(make: Make, parts: tuple) -> None:
    runtime, workspaces, _ = parts
    manager = make()
    sandbox = await manager.create(SandboxSpec(expires_after_minutes=0))
    data = workspaces.get(sandbox.id).data_dir
    await manager.execute(sandbox.id, f"x = 1\nopen({str(data / 'keep.txt')!r}, 'w').write('kept')")
    assert await manager.reap_idle() == [sandbox.id]
    assert (await manager.get(sandbox.id)).status == "expired" and sandbox.id not in runtime.processes
    after = await manager.execute(sandbox.id, f"print(open({str(data / 'keep.txt')!r}).read())\nx")
    assert text(after).startswith("[This sandbox was idle for 0 minutes and was reclaimed")
    assert "kept\n" in text(after) and after.error is not None and after.error.name == "NameError"


async def test_at_the_cap_the_sandbox_idle_longest_makes_room(make: Make) -> None:
    hooks = Recorder()
    manager = make(hooks, max_sandboxes=1)
    first = await manager.create(SandboxSpec())
    second = await manager.create(SandboxSpec())
    assert (await manager.get(first.id)).status == "expired" and ("reclaimed", "capacity") in hooks.events
    assert manager.slots.used == 1
    back = await manager.execute(first.id, "print('back')")  # takes the slot from `second` in turn
    assert "to make room for others" in text(back) and text(back).endswith("back\n")
    assert (await manager.get(second.id)).status == "expired"


async def test_the_pool_hands_out_a_started_sandbox(make: Make) -> None:
    hooks = Recorder()
    manager = make(hooks, pool_size=1, max_sandboxes=4)
    manager.pool.fill()
    for _ in range(300):
        if manager.pool.ready:
            break
        await asyncio.sleep(0.1)
    sandbox = await manager.create(SandboxSpec())
    assert ("acquired", "pool") in hooks.events
    # The warm-up imported modules but bound no names.
    assert text(await manager.execute(sandbox.id, "print(sorted(n for n in dir() if 'toolshed' in n))")) == "[]\n"


async def test_recovery_reconnects_to_kernels_that_kept_running(make: Make) -> None:
    first = make()
    sandbox = await first.create(SandboxSpec())
    await first.execute(sandbox.id, "x = 41")
    await first.close()
    second = make()
    assert await second.recover() == [sandbox.id]
    answer = await second.execute(sandbox.id, "print(x + 1)")
    assert text(answer) == "42\n" and not answer.kernel_restarted


async def test_a_kernel_killed_from_outside_is_reclaimed_by_the_watcher(make: Make, parts: tuple) -> None:
    runtime = parts[0]
    manager = make()
    manager.start_watcher()
    sandbox = await manager.create(SandboxSpec())
    runtime.kill(sandbox.id)
    for _ in range(100):
        if (await manager.get(sandbox.id)).status == "expired":
            break
        await asyncio.sleep(0.05)
    after = await manager.execute(sandbox.id, "print('fresh')")
    assert text(after).startswith("[This sandbox's container stopped while idle") and text(after).endswith("fresh\n")


async def test_a_queued_cell_cancelled_before_its_turn_never_runs(make: Make, parts: tuple) -> None:
    workspaces = parts[1]
    manager = make()
    sandbox = await manager.create(SandboxSpec())
    marker = workspaces.get(sandbox.id).data_dir / "b.txt"
    ahead = asyncio.create_task(manager.execute(sandbox.id, "import time\ntime.sleep(1.5)\nprint('ahead')"))
    await asyncio.sleep(0.3)
    queued = asyncio.create_task(manager.execute(sandbox.id, f"open({str(marker)!r}, 'w').write('b')"))
    await asyncio.sleep(0.3)
    queued.cancel()
    assert (await ahead).status == "completed" and text(await ahead) == "ahead\n"
    assert await asyncio.gather(queued, return_exceptions=True) and queued.cancelled()
    await manager.execute(sandbox.id, "pass")
    assert not marker.exists()


async def test_a_running_cell_cancelled_is_interrupted_and_the_next_runs_at_once(make: Make) -> None:
    manager = make()
    sandbox = await manager.create(SandboxSpec())
    running = asyncio.create_task(manager.execute(sandbox.id, "import time\ntime.sleep(60)"))
    await asyncio.sleep(0.5)
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)
    assert text(await asyncio.wait_for(manager.execute(sandbox.id, "print('next')"), 10)) == "next\n"


async def test_a_long_cell_holds_the_run_queue_for_one_quantum_only(make: Make) -> None:
    manager = make(cell_slots=1, cell_quantum=0.2, max_sandboxes=4)
    slow, quick = await manager.create(SandboxSpec()), await manager.create(SandboxSpec())
    long = asyncio.create_task(manager.execute(slow.id, "import time\ntime.sleep(3)\nprint('slow')"))
    await asyncio.sleep(0.5)
    short = await asyncio.wait_for(manager.execute(quick.id, "print('quick')"), 10)
    assert text(short) == "quick\n" and not long.done()  # it went by while the long cell held the only slot
    assert text(await long) == "slow\n"


async def test_a_tool_call_streams_its_cell_outputs_as_they_come(make: Make, parts: tuple, tmp_path: Path) -> None:
    from orchestrator.db import Database
    from orchestrator.services.bindings import SandboxBindings
    from orchestrator.services.container_files import ContainerFiles, ContainerFileStore, ScanLimits
    from orchestrator.services.exports import ExportLimits, Exports
    from orchestrator.services.interpreter import Interpreter
    from orchestrator.services.project_sandboxes import ProjectSandboxes
    from orchestrator.services.projects import Owners
    from orchestrator.services.sandbox_homes import SandboxHomes
    from orchestrator.services.storage import FileStore
    from orchestrator.tools.cells import Item, Logs
    from orchestrator.tools.code_interpreter import CodeInterpreterResult, CodeInterpreterTool
    from orchestrator.tools.registry import ToolCall, ToolContext, ToolProblem, ToolRegistry

    workspaces = parts[1]
    db = Database(tmp_path / "toolshed.db")
    files = FileStore(db, tmp_path)
    owners = Owners(db)
    exports = Exports(db, files, owners, ExportLimits(1 << 30, 0, 1 << 30))
    container_files = ContainerFiles(ContainerFileStore(db), files, lambda _: LocalFiles(workspaces), exports,
                                     ScanLimits())
    manager = make()
    sandboxes = ProjectSandboxes(manager, owners, lambda _: None, SandboxHomes(db, ""))
    bindings = SandboxBindings(db, sandboxes, manager, container_files, files, memory_limit="1g")
    registry = ToolRegistry([CodeInterpreterTool(bindings, Interpreter(manager, sandboxes, exports, max_images=10),
                                                 max_chars=1000)])
    seen: list[Item] = []

    async def hook(item: Item) -> None:
        seen.append(item)

    # One write per line (print() makes two, which ipykernel may send as two stream messages).
    code = ('{"code": "import sys, time\\nfor i in range(2):\\n    sys.stdout.write(str(i) + \'\\\\n\')\\n'
            '    sys.stdout.flush()\\n    time.sleep(0.2)"}')
    outcome = await registry.call(ToolCall("call_1", "code_interpreter", code),
                                  ToolContext("unit", "thread-1", "p", on_output=hook))
    assert isinstance(outcome, CodeInterpreterResult) and seen == [Logs("0\n"), Logs("1\n")]
    problem = await registry.call(ToolCall("call_2", "code_interpreter", "{not json"), ToolContext("unit", "t", "p"))
    assert isinstance(problem, ToolProblem) and problem.code == "invalid_arguments"
    assert problem.output.startswith("Error: ")
    unknown = await registry.call(ToolCall("call_3", "web_browser", "{}"), ToolContext("unit", "t", "p"))
    assert isinstance(unknown, ToolProblem) and unknown.code == "unknown_tool"
    db.close()


@pytest.mark.parametrize("problem", [requests.exceptions.ReadTimeout("read timed out (read timeout=60)"),
                                     requests.exceptions.ChunkedEncodingError("connection broken")])
def test_a_docker_engine_too_slow_or_cut_off_is_unavailable_not_a_crash(problem: Exception) -> None:
    """A force-remove under a fork bomb took over docker-py's 60 s read timeout: a 503, not a 500."""
    assert isinstance(engine_error(problem, "cntr_x"), EngineUnavailable)
