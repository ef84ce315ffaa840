"""Sandbox lifecycle and execution: create, find, execute one cell at a time, heal, reclaim, recover, delete.

Docker calls block, so they run in worker threads; kernel traffic is async. Each sandbox has one lock: cells
on one sandbox never interleave, while different sandboxes run in parallel.

A sandbox whose container is reclaimed (idle past its expiry, past the maximum lifetime, evicted to make room
under the cap, or stopped by an engine restart) keeps its id and its /mnt/data; its next cell starts a fresh
container and kernel and says that in-memory state was reset.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import signal
import threading
import time
from collections.abc import Coroutine
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from orchestrator.sandbox.capacity import Slots
from orchestrator.sandbox.errors import InvalidRequest, SandboxNotFound, SandboxStartFailed
from orchestrator.sandbox.kernel import CellResult, KernelConnector, KernelNotReady, KernelSession, new_connection_info
from orchestrator.sandbox.models import Collected, Execution, ExecutionError, Sandbox, SandboxSpec, TextOutput
from orchestrator.sandbox.outputs import OutputHook
from orchestrator.sandbox.pool import NoRoom, WarmPool
from orchestrator.sandbox.runtime import CONTAINER_RUN_DIR, Limits, Runtime, StopStream
from orchestrator.sandbox.workspace import UnsafeRunDir, WorkspaceStore

log = logging.getLogger("toolshed.sandbox")

MEMORY_LIMITS = {"1g": 1 << 30, "4g": 4 << 30, "16g": 16 << 30, "64g": 64 << 30}


@dataclass(frozen=True)
class SandboxPolicy:
    """Limits and timings that apply to every sandbox."""

    cpus: float = 1.0
    pids: int = 256
    tmp_size: str = "256m"
    kernel_start_timeout: float = 60.0
    interrupt_grace: float = 1.0
    max_output_bytes: int = 1 << 20
    default_timeout: float = 120.0
    max_timeout: float = 3600.0
    pool_size: int = 0
    # Pooled sandboxes are started with this memory limit; other limits always start cold.
    pool_memory_limit: str = "1g"
    max_sandboxes: int = 64
    capacity_wait: float = 30.0
    # A container older than this is recycled at its next idle moment, so no kernel lives (and leaks) forever.
    max_lifetime: float = 24 * 3600.0
    # The largest kernel message frame the server accepts (see KernelConnector).
    max_message_bytes: int = 16 << 20


class LifecycleHooks(Protocol):
    """Told about lifecycle events, for metrics; the engine itself depends on no metrics library."""

    def acquired(self, source: str, seconds: float) -> None:
        """A sandbox became usable: source "pool", "cold" or "rehydrate"; seconds until its kernel answered."""

    def waited_for_capacity(self, seconds: float) -> None:
        """A container start took a slot under the cap after waiting this long (0 when one was free)."""

    def reclaimed(self, reason: str) -> None:
        """A container was reclaimed: reason "idle", "lifetime", "capacity" or "stopped"."""


class ArtifactSink(Protocol):
    """Registers what a cell wrote under /mnt/data. Called after every cell, while the sandbox is still locked,
    so the next cell cannot change a file before it is registered."""

    async def collect(self, sandbox_id: str) -> Collected: ...


@dataclass
class _Live:
    """The manager's mutable view of one sandbox."""

    sandbox: Sandbox
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    session: KernelSession | None = None
    # Why the kernel must be restarted before its next cell; None while it is healthy.
    needs_restart: str | None = None
    # A restart the user has not been told about yet (e.g. the container died while idle).
    unreported_reset: str | None = None
    interrupt_requested: bool = False
    # Monotonic times: the last cell's end (least recently used goes first under the cap) and the container start.
    last_used: float = field(default_factory=time.monotonic)
    started: float = field(default_factory=time.monotonic)


class SandboxManager:
    """The engine's entry point: every sandbox operation goes through here."""

    def __init__(self, runtime: Runtime, workspaces: WorkspaceStore, policy: SandboxPolicy,
                 artifacts: ArtifactSink | None = None, hooks: LifecycleHooks | None = None) -> None:
        self._runtime = runtime
        self._workspaces = workspaces
        self._policy = policy
        self._artifacts = artifacts
        self._hooks = hooks
        self._connector = KernelConnector(max_message_bytes=policy.max_message_bytes)
        self._live: dict[str, _Live] = {}
        self._background: set[asyncio.Task[None]] = set()
        self.slots = Slots(policy.max_sandboxes, policy.capacity_wait)
        self._stop_watching = threading.Event()
        self._stop_stream: StopStream | None = None
        self._slot_suspects: set[str] = set()
        self.pool: WarmPool[_Live] = WarmPool(policy.pool_size, self._start_pooled, self._abandon)

    # ---- lifecycle -------------------------------------------------------------------------------------------

    async def recover(self) -> list[str]:
        """Adopt what a previous run of this namespace left behind: its containers, and the workspaces of
        sandboxes whose containers were reclaimed (they come back as expired). Returns their ids."""
        now = int(time.time())
        metas = {meta["id"]: meta for meta in await asyncio.to_thread(self._workspaces.load_metas)}
        running = []
        for labels in await asyncio.to_thread(self._runtime.list_labels):
            if labels["id"] in metas:
                running.append(metas.pop(labels["id"]))  # handed out from the pool: its labels are stale
            elif labels.get("meta.pooled") == "true":
                await self._destroy(labels["id"])  # never handed out: nobody's files
            else:
                running.append(labels)
        for labels, status in [(labels, "running") for labels in running] + \
                [(meta, "expired") for meta in metas.values()]:
            # Idle time is counted from now: the previous run's activity is unknown.
            sandbox = replace(_sandbox_from_labels(labels), status=status, last_active_at=now)
            if sandbox.id in self._live:
                continue
            if status == "running":
                self.slots.adopt(sandbox.id)
            # After a host reboot the disk is no longer mounted; files must not be written beside it.
            await asyncio.to_thread(self._workspaces.ensure_mounted, self._workspaces.get(sandbox.id))
            live = self._live[sandbox.id] = _Live(sandbox)
            if status == "expired":
                live.unreported_reset = _expired_notice(sandbox)
        return sorted(self._live)

    def start_reaper(self, interval: float) -> None:
        """Reclaim idle and too-old sandboxes every `interval` seconds, until close()."""

        async def loop() -> None:
            while True:
                await asyncio.sleep(interval)
                try:
                    await self.reap_idle()
                    await self.sweep_orphans()
                except Exception:
                    log.exception("reaping idle sandboxes failed")

        task = asyncio.create_task(loop())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def start_watcher(self) -> None:
        """Follow the engine's container events until close(): a sandbox whose container stops while idle is
        reclaimed at once (so a dead kernel is never handed a cell), and when the event stream breaks (the Docker
        engine restarted) every sandbox is checked once the engine answers again. Runs in a daemon thread because
        the event stream blocks."""
        loop = asyncio.get_running_loop()
        threading.Thread(target=self._watch, args=(loop,), name="toolshed-engine-events", daemon=True).start()

    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        def on_loop(check: Coroutine[Any, Any, None]) -> None:
            asyncio.run_coroutine_threadsafe(check, loop).add_done_callback(_log_failure)

        connected_before = False
        while not self._stop_watching.is_set():
            try:
                self._stop_stream = stream = self._runtime.stopped_containers()
            except Exception:  # noqa: BLE001 - the engine is down; retry until it is back
                self._stop_watching.wait(1.0)
                continue
            if connected_before:
                log.warning("the Docker engine's event stream was cut (engine restarted?); checking every sandbox")
                on_loop(self._check_all())
            connected_before = True
            for sandbox_id in stream:
                on_loop(self._check_stopped(sandbox_id))
            self._stop_watching.wait(1.0)

    async def _check_stopped(self, sandbox_id: str) -> None:
        live = self._live.get(sandbox_id)
        if live is not None:
            await self._reclaim(live, "stopped", _STOPPED_NOTICE, unless_running=True)
        for pooled in self.pool.remove_where(lambda item: item.sandbox.id == sandbox_id):
            await self._abandon(pooled)

    async def sweep_orphans(self) -> list[str]:
        """Remove this namespace's containers that hold no slot: ones whose removal failed while the engine was
        down. Every container the manager means to keep holds a slot from before its creation. The reverse is
        reconciled too: a slot held for two sweeps in a row by no running sandbox and no pooled one is given back,
        so the cap cannot shrink by accounting drift (starts in progress last seconds, sweeps are 30 s apart)."""
        orphans = [labels["id"] for labels in await asyncio.to_thread(self._runtime.list_labels)
                   if not self.slots.holds(labels["id"])]
        for sandbox_id in orphans:
            if not self.slots.holds(sandbox_id):  # re-checked: a start may have taken it while we listed
                await asyncio.to_thread(self._runtime.remove, sandbox_id)
                log.info("removed an orphaned container", extra={"container_id": sandbox_id})
        accounted = {sandbox_id for sandbox_id, live in self._live.items() if live.sandbox.status == "running"}
        suspects = self.slots.held() - accounted - {item.sandbox.id for item in self.pool.items()}
        for sandbox_id in suspects & self._slot_suspects:
            log.warning("gave back a sandbox slot nothing held", extra={"container_id": sandbox_id})
            self._slot_freed(sandbox_id)
        self._slot_suspects = suspects
        return orphans

    async def _check_all(self) -> None:
        await self.sweep_orphans()
        for live in list(self._live.values()):
            await self._reclaim(live, "stopped", _STOPPED_NOTICE, unless_running=True)
        running = {item.sandbox.id: await self._is_running(item.sandbox.id) for item in self.pool.items()}
        for pooled in self.pool.remove_where(lambda item: not running.get(item.sandbox.id, True)):
            await self._abandon(pooled)
        self.pool.fill()

    async def reap_idle(self) -> list[str]:
        """Remove the containers of sandboxes idle past their expiry or older than the maximum lifetime; their
        files stay for rehydration. A sandbox running a cell is left alone until it is idle."""
        now, now_mono = time.time(), time.monotonic()
        reaped = []
        for live in list(self._live.values()):
            sandbox = live.sandbox
            if now - sandbox.last_active_at >= sandbox.expires_after_minutes * 60:
                reclaimed = await self._reclaim(live, "idle", _expired_notice(sandbox))
            elif now_mono - live.started >= self._policy.max_lifetime:
                reclaimed = await self._reclaim(live, "lifetime", (
                    f"This sandbox reached the maximum lifetime of {self._policy.max_lifetime / 3600:g} hours and "
                    f"was recycled; {_RESET}"))
            else:
                continue
            if reclaimed:
                reaped.append(sandbox.id)
        return reaped

    async def _reclaim(self, live: _Live, reason: str, notice: str, *, unless_running: bool = False) -> bool:
        """Remove an idle sandbox's container, keeping its files; False if it is busy or already gone (or, with
        `unless_running`, if its container is running: a stop seen in an event may have been our own restart).
        A busy sandbox is left alone: its running cell notices a dead kernel by itself."""
        # An unlocked asyncio.Lock is acquired without yielding, so "idle" cannot change in between.
        if live.sandbox.status != "running" or live.lock.locked():
            return False
        async with live.lock:
            if self._live.get(live.sandbox.id) is not live:
                return False
            if unless_running and await self._is_running(live.sandbox.id):
                return False
            if live.session is not None:
                live.session.close()
                live.session = None
            await asyncio.to_thread(self._runtime.remove, live.sandbox.id)
            self._slot_freed(live.sandbox.id)
            live.needs_restart = None
            live.sandbox = replace(live.sandbox, status="expired")
            live.unreported_reset = notice
        if self._hooks is not None:
            self._hooks.reclaimed(reason)
        log.info("sandbox reclaimed (%s)", reason, extra={"container_id": live.sandbox.id})
        return True

    async def _make_room(self) -> bool:
        """Free one slot for a container start: a pooled sandbox first (nobody's), else the sandbox idle longest."""
        pooled = self.pool.take_for_room()
        if pooled is not None:
            await self._abandon(pooled)
            return True
        idle = sorted((live for live in self._live.values()
                       if live.sandbox.status == "running" and not live.lock.locked()), key=lambda live: live.last_used)
        for live in idle:
            notice = (f"This sandbox was reclaimed to make room for others (this server runs at most "
                      f"{self.slots.limit} at once); {_RESET}")
            if await self._reclaim(live, "capacity", notice):
                return True
        return False

    async def close(self) -> None:
        """Disconnect from every kernel. Containers keep running, to be recovered by the next start; idle pooled
        ones are removed."""
        self._stop_watching.set()
        if self._stop_stream is not None:
            self._stop_stream.close()
        await self.pool.close()
        for task in self._background:
            task.cancel()
        for live in self._live.values():
            if live.session is not None:
                live.session.close()
                live.session = None
        self._connector.close()

    async def engine_alive(self) -> bool:
        """Whether the container engine answers."""
        return await asyncio.to_thread(self._runtime.ping)

    async def create(self, spec: SandboxSpec) -> Sandbox:
        """Start a container and wait until its kernel answers."""
        if spec.memory_limit not in MEMORY_LIMITS:
            raise InvalidRequest(
                f"memory_limit must be one of {', '.join(MEMORY_LIMITS)}; got '{spec.memory_limit}'.",
                param="memory_limit",
            )
        started = time.monotonic()
        warm = self.pool.take() if spec.memory_limit == self._policy.pool_memory_limit else None
        live = warm or _Live(_new_sandbox(spec.memory_limit))
        now_ns = time.time_ns()
        live.sandbox = replace(live.sandbox, name=spec.name, created_at=now_ns // 1_000_000_000,
                               created_ns=now_ns, last_active_at=now_ns // 1_000_000_000, labels=dict(spec.labels),
                               expires_after_minutes=spec.expires_after_minutes)
        sandbox = live.sandbox
        try:
            if warm is None:
                await self._start_container(live)
            await asyncio.to_thread(self._workspaces.save_meta, sandbox.id, {"id": sandbox.id, **_labels_for(sandbox)})
        except BaseException:
            await self._abandon(live)
            raise
        live.last_used = time.monotonic()
        self._live[sandbox.id] = live
        if self._hooks is not None:
            self._hooks.acquired("pool" if warm else "cold", time.monotonic() - started)
        log.info("sandbox created (%s start)", "warm" if warm else "cold",
                 extra={"container_id": sandbox.id, "ms": round((time.monotonic() - started) * 1000, 1)})
        return live.sandbox

    async def _start_pooled(self) -> _Live:
        """A sandbox for the pool: kernel ready and the heavy imports done, so a first cell runs at once."""
        live = _Live(_new_sandbox(self._policy.pool_memory_limit, labels={"pooled": "true"}))
        # The pool never takes the last free slot, nor one somebody is waiting for.
        if not self.slots.try_take(live.sandbox.id, spare=1):
            raise NoRoom
        try:
            await self._start_container(live)
            assert live.session is not None
            await live.session.execute(_WARM_UP, self._policy.kernel_start_timeout,
                                       interrupt_grace=self._policy.interrupt_grace, max_text_bytes=4096)
        except BaseException:
            await self._abandon(live)
            raise
        live.sandbox = replace(live.sandbox, labels={})
        self.slots.changed()  # a caller waiting under the cap may take this one's slot now
        return live

    async def _abandon(self, live: _Live) -> None:
        """Tear down a sandbox nobody was given: its kernel connection, container and files."""
        if live.session is not None:
            live.session.close()
            live.session = None
        await self._destroy(live.sandbox.id)

    async def get(self, sandbox_id: str) -> Sandbox:
        return self._get_live(sandbox_id).sandbox

    def status_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for live in self._live.values():
            counts[live.sandbox.status] = counts.get(live.sandbox.status, 0) + 1
        return counts

    async def list(self) -> list[Sandbox]:
        return sorted((live.sandbox for live in self._live.values()), key=lambda s: (s.created_ns, s.id))

    async def delete(self, sandbox_id: str) -> None:
        """Remove the container and every file of the sandbox. A cell still running on it ends as failed."""
        live = self._live.pop(sandbox_id, None)
        if live is None:
            raise SandboxNotFound(sandbox_id)
        live.interrupt_requested = True
        if live.session is not None:
            live.session.close()
            live.session = None
        await self._destroy(sandbox_id)

    async def _destroy(self, sandbox_id: str) -> None:
        """Remove a sandbox's container and files, and give back its slot."""
        try:
            await asyncio.to_thread(self._runtime.remove, sandbox_id)
            await asyncio.to_thread(self._workspaces.remove, sandbox_id)
        finally:
            self._slot_freed(sandbox_id)

    def _slot_freed(self, sandbox_id: str) -> None:
        self.slots.release(sandbox_id)
        self.pool.fill()

    # ---- execution -------------------------------------------------------------------------------------------

    async def execute(
        self,
        sandbox_id: str,
        code: str,
        timeout: float | None = None,
        on_output: OutputHook | None = None,
    ) -> Execution:
        """Run one cell. Errors in the code, timeouts, OOM and kernel death are reported in the Execution."""
        live = self._get_live(sandbox_id)
        timeout = self.check_timeout(timeout)
        try:
            code.encode()
        except UnicodeEncodeError as exc:  # the kernel protocol could not send it
            raise InvalidRequest(f"code is not valid Unicode: it contains a lone surrogate at position {exc.start}.",
                                 param="code") from exc
        async with live.lock:
            started = time.monotonic()
            restarted = await self._ensure_kernel(live)
            notice = None
            if live.unreported_reset:
                notice = TextOutput("notice", f"[{live.unreported_reset}]\n")
                live.unreported_reset = None
                if on_output is not None:
                    await on_output(notice)
            live.interrupt_requested = False
            result, abandoned = await self._run_cell(live, code, timeout, on_output)
            status, error = await self._judge(live, result, timeout)
            # Files written before an error or a timeout count too.
            collected = await self._artifacts.collect(sandbox_id) if self._artifacts else Collected()
            live.sandbox = replace(live.sandbox, last_active_at=int(time.time()))
            live.last_used = time.monotonic()
        self.slots.changed()  # an idle sandbox can now be reclaimed for a caller waiting under the cap
        if abandoned:
            raise asyncio.CancelledError
        duration_ms = int((time.monotonic() - started) * 1000)
        if result.outcome not in ("ok", "error"):  # ended by the engine, not by the user's code
            log.warning("execution %s: %s", status, error.name if error else result.outcome,
                        extra={"container_id": sandbox_id, "ms": duration_ms})
        return Execution(
            id=f"exec_{secrets.token_hex(12)}",
            sandbox_id=sandbox_id,
            status=status,
            outputs=((notice,) if notice else ()) + result.outputs,
            error=error,
            duration_ms=duration_ms,
            kernel_restarted=restarted or live.needs_restart is not None,
            truncated_bytes=result.truncated_bytes,
            artifacts=collected.artifacts,
            artifacts_omitted=collected.omitted,
            artifacts_complete=collected.complete,
        )

    async def _run_cell(self, live: _Live, code: str, timeout: float,
                        on_output: OutputHook | None) -> tuple[CellResult, bool]:
        """Run one cell; (result, abandoned). A caller cancelled while its cell runs stops that cell and no other:
        the cell is interrupted, and the sandbox is handed on only once the kernel has settled (or is marked for a
        restart when it ignores the interrupt). A caller cancelled while still queued for the lock never gets
        here, so its cell never runs."""
        assert live.session is not None
        session = live.session
        cell = asyncio.ensure_future(session.execute(
            code, timeout, interrupt_grace=self._policy.interrupt_grace, max_text_bytes=self._policy.max_output_bytes,
            on_output=on_output, is_alive=lambda: self._is_running(live.sandbox.id)))
        try:
            return await asyncio.shield(cell), False
        except asyncio.CancelledError:
            live.interrupt_requested = True
            await session.interrupt()
            done, _ = await asyncio.wait({cell}, timeout=self._policy.interrupt_grace + 1.0)
            if not done:
                cell.cancel()
                await asyncio.wait({cell})
                return CellResult("stuck", (), None, 0), True
            return cell.result(), True

    async def interrupt(self, sandbox_id: str) -> None:
        """Interrupt the running cell, if any; it ends with status "interrupted"."""
        live = self._get_live(sandbox_id)
        if live.session is not None and live.lock.locked():
            live.interrupt_requested = True
            await live.session.interrupt()

    async def restart(self, sandbox_id: str) -> Sandbox:
        """Start a fresh kernel (in-memory state is lost, files are kept), after interrupting any running cell."""
        live = self._get_live(sandbox_id)
        await self.interrupt(sandbox_id)
        async with live.lock:
            await self._restart_kernel(live, "restarted on request")
        return live.sandbox

    def check_timeout(self, timeout: float | None) -> float:
        """The timeout to use for a cell; InvalidRequest if it is out of range."""
        if timeout is None:
            return self._policy.default_timeout
        if not 0 < timeout <= self._policy.max_timeout:
            raise InvalidRequest(
                f"timeout must be greater than 0 and at most {self._policy.max_timeout:g} seconds.", param="timeout"
            )
        return float(timeout)

    async def _judge(self, live: _Live, result: CellResult, timeout: float) -> tuple[Any, ExecutionError | None]:
        """Turns how a cell ended into (status, error), scheduling a kernel restart when one is needed."""
        if result.outcome == "ok":
            return "completed", None
        if result.outcome == "error":
            assert result.error is not None
            interrupted = live.interrupt_requested and result.error.name == "KeyboardInterrupt"
            return ("interrupted" if interrupted else "failed"), result.error
        if result.outcome == "timeout":
            return "timed_out", ExecutionError(
                "TimeoutError", f"Execution exceeded the {timeout:g} s timeout and was interrupted."
            )
        if result.outcome == "stuck":
            reason = (f"Execution exceeded the {timeout:g} s timeout and did not respond to an interrupt; the kernel "
                      "was restarted, so variables and imports were lost (files in /mnt/data were kept).")
            self._schedule_restart(live, reason)
            return "timed_out", ExecutionError("TimeoutError", reason)
        error = await self._death_error(live)
        self._schedule_restart(live, error.value)
        return ("interrupted" if live.interrupt_requested else "failed"), error

    async def _death_error(self, live: _Live) -> ExecutionError:
        lost = "The kernel was restarted; variables and imports were lost (files in /mnt/data were kept)."
        try:
            state = await asyncio.to_thread(self._runtime.state, live.sandbox.id)
        except SandboxNotFound:
            return ExecutionError("KernelDied", f"The sandbox container was removed from outside. {lost}")
        if state.oom_killed:
            return ExecutionError(
                "OutOfMemoryError",
                f"The sandbox ran out of memory (limit {live.sandbox.memory_limit}) and its kernel was killed. {lost}",
            )
        return ExecutionError("KernelDied", f"The kernel process exited ({_describe_exit(state.exit_code)}). {lost}")

    # ---- kernel health ---------------------------------------------------------------------------------------

    def _get_live(self, sandbox_id: str) -> _Live:
        live = self._live.get(sandbox_id)
        if live is None:
            raise SandboxNotFound(sandbox_id)
        return live

    async def _is_running(self, sandbox_id: str) -> bool:
        try:
            return (await asyncio.to_thread(self._runtime.state, sandbox_id)).running
        except SandboxNotFound:
            return False

    async def _ensure_kernel(self, live: _Live) -> bool:
        """Make sure a ready kernel is connected; returns True if one had to be (re)started."""
        if live.needs_restart is not None:
            await self._restart_kernel(live, live.needs_restart)
            return True
        if live.session is not None:
            return False
        if live.sandbox.status == "expired":
            started = time.monotonic()
            await self._restart_kernel(live, None)
            if self._hooks is not None:
                self._hooks.acquired("rehydrate", time.monotonic() - started)
            return True
        # First use after recovery: reconnect if the container survived, otherwise start a fresh kernel.
        if await self._is_running(live.sandbox.id):
            try:
                info = self._workspaces.read_connection(live.sandbox.id)
                # Sealed and checked before connecting: a socket swapped for a link is never followed.
                await asyncio.to_thread(self._workspaces.seal, live.sandbox.id, info)
                live.session = self._connect(live, info)
                await live.session.wait_ready(min(5.0, self._policy.kernel_start_timeout))
                return False
            except (KernelNotReady, OSError, ValueError, UnsafeRunDir) as exc:
                log.warning("could not reconnect to the kernel (%s); starting a fresh one", exc,
                            extra={"container_id": live.sandbox.id})
        await self._restart_kernel(live, None)
        live.unreported_reset = live.unreported_reset or (
            "The sandbox's kernel had stopped and was restarted: variables and imports were lost (files in "
            "/mnt/data were kept).")
        return True

    def _schedule_restart(self, live: _Live, reason: str) -> None:
        """Mark the kernel for restart and heal it in the background, so an idle sandbox comes back by itself."""
        live.needs_restart = reason

        async def heal() -> None:
            async with live.lock:
                if live.needs_restart is not None and live.sandbox.id in self._live:
                    try:
                        await self._restart_kernel(live, live.needs_restart)
                    except Exception:
                        log.exception("background restart of %s failed", live.sandbox.id)

        task = asyncio.create_task(heal())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _restart_kernel(self, live: _Live, reason: str | None) -> None:
        if live.session is not None:
            live.session.close()
            live.session = None
        live.needs_restart = reason
        await self._start_container(live, restart=True)
        live.needs_restart = None
        log.info("kernel restarted (%s)", reason or "fresh container", extra={"container_id": live.sandbox.id})

    async def _start_container(self, live: _Live, restart: bool = False) -> None:
        sandbox = live.sandbox
        container_info = new_connection_info(f"{CONTAINER_RUN_DIR}/kernel")
        ws = await asyncio.to_thread(self._workspaces.create, sandbox.id, container_info)
        if restart and await self._container_exists(sandbox.id):
            await asyncio.to_thread(self._runtime.restart, sandbox.id)
        else:
            waited = await self.slots.take(sandbox.id, self._make_room)
            if self._hooks is not None:
                self._hooks.waited_for_capacity(waited)
            limits = Limits(MEMORY_LIMITS[sandbox.memory_limit], self._policy.cpus, self._policy.pids,
                            self._policy.tmp_size)
            try:
                await asyncio.to_thread(
                    self._runtime.create, sandbox.id, limits=limits,
                    run_dir=self._workspaces.run_dir_source(sandbox.id), data_dir=ws.data_dir,
                    labels=_labels_for(sandbox),
                )
            except BaseException:
                self.slots.release(sandbox.id)
                raise
        live.started = time.monotonic()
        live.session = self._connect(live, container_info)
        try:
            await live.session.wait_ready(self._policy.kernel_start_timeout)
            # Only the image's own start-up has run in the container so far; from now on its code is hostile.
            await asyncio.to_thread(self._workspaces.seal, sandbox.id, container_info)
        except KernelNotReady as exc:
            raise SandboxStartFailed(f"the sandbox kernel did not start: {exc}") from exc
        except UnsafeRunDir as exc:
            raise SandboxStartFailed(f"the sandbox kernel's sockets are not as expected: {exc}") from exc
        live.sandbox = replace(live.sandbox, status="running", last_active_at=int(time.time()))

    async def _container_exists(self, sandbox_id: str) -> bool:
        try:
            await asyncio.to_thread(self._runtime.state, sandbox_id)
            return True
        except SandboxNotFound:
            return False

    def _connect(self, live: _Live, container_info: dict[str, Any]) -> KernelSession:
        host_info = dict(container_info, ip=str(self._workspaces.get(live.sandbox.id).run_dir / "kernel"))
        return self._connector.connect(host_info)


# Imported into the interpreter's module cache, binding no names in the user's namespace.
_WARM_UP = ("import importlib as _toolshed_importlib\n"
            "for _toolshed_module in ('numpy', 'pandas', 'matplotlib.pyplot'):\n"
            "    _toolshed_importlib.import_module(_toolshed_module)\n"
            "del _toolshed_importlib, _toolshed_module\n")


def _new_sandbox(memory_limit: str, labels: dict[str, str] | None = None) -> Sandbox:
    now_ns = time.time_ns()
    return Sandbox(id=f"cntr_{secrets.token_hex(16)}", name="", created_at=now_ns // 1_000_000_000,
                   memory_limit=memory_limit, last_active_at=now_ns // 1_000_000_000, labels=labels or {},
                   created_ns=now_ns)


_RESET = "a fresh kernel was started. Variables and imports were lost; files in /mnt/data were kept."


_STOPPED_NOTICE = (f"This sandbox's container stopped while idle (for example, the Docker engine restarted); "
                   f"{_RESET}")


def _log_failure(future: Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("checking a stopped sandbox failed: %s", future.exception())


def _expired_notice(sandbox: Sandbox) -> str:
    return f"This sandbox was idle for {sandbox.expires_after_minutes} minutes and was reclaimed; {_RESET}"


def _describe_exit(code: int | None) -> str:
    if code is not None and code > 128:
        try:
            return f"killed by {signal.Signals(code - 128).name}"
        except ValueError:
            pass
    return f"exit code {code}"


def _labels_for(sandbox: Sandbox) -> dict[str, str]:
    return {
        "name": sandbox.name,
        "created_at": str(sandbox.created_at),
        "created_ns": str(sandbox.created_ns),
        "memory_limit": sandbox.memory_limit,
        "expires_after_minutes": str(sandbox.expires_after_minutes),
        **{f"meta.{k}": v for k, v in sandbox.labels.items()},
    }


def _sandbox_from_labels(labels: dict[str, str]) -> Sandbox:
    created = int(labels.get("created_at", "0"))
    return Sandbox(
        id=labels["id"],
        name=labels.get("name", ""),
        created_at=created,
        memory_limit=labels.get("memory_limit", "1g"),
        last_active_at=created,
        labels={k.removeprefix("meta."): v for k, v in labels.items() if k.startswith("meta.")},
        created_ns=int(labels.get("created_ns", created * 1_000_000_000)),
        expires_after_minutes=int(labels.get("expires_after_minutes", "20")),
    )
