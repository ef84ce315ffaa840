"""Running cells: one at a time per sandbox, on a kernel made healthy first, with how each cell ended judged.

Errors in the code, timeouts, OOM and kernel death are reported in the Execution, never raised. A cell that
leaves the kernel unusable schedules a restart, done in the background so an idle sandbox heals by itself.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import replace

from orchestrator.sandbox import notices
from orchestrator.sandbox.admission import RunQueue
from orchestrator.sandbox.errors import EngineUnavailable, InvalidRequest, SandboxNotFound, SandboxStartFailed
from orchestrator.sandbox.kernel import CellResult, KernelNotReady
from orchestrator.sandbox.lifecycle import Lifecycle
from orchestrator.sandbox.models import Collected, Execution, ExecutionError, ExecutionStatus, TextOutput
from orchestrator.sandbox.outputs import OutputHook
from orchestrator.sandbox.policy import ArtifactSink
from orchestrator.sandbox.registry import LiveSandbox
from orchestrator.sandbox.workspace import UnsafeRunDir

log = logging.getLogger("toolshed.sandbox")


class Executor:
    def __init__(self, lifecycle: Lifecycle, artifacts: ArtifactSink) -> None:
        self._lifecycle = lifecycle
        self._policy = lifecycle.policy
        self._artifacts = artifacts
        self._run_queue = RunQueue(self._policy.cell_slots, self._policy.cell_quantum)

    async def execute(self, sandbox_id: str, code: str, timeout: float | None = None,
                      on_output: OutputHook | None = None) -> Execution:
        """Run one cell. A caller cancelled while queued for the sandbox never runs; one cancelled while its
        cell runs stops that cell (see _run_cell) and gets the cancellation once the sandbox is tidy."""
        live = self._lifecycle.registry.get(sandbox_id)
        timeout = self.check_timeout(timeout)
        try:
            code.encode()
        except UnicodeEncodeError as exc:  # the kernel protocol could not send it
            raise InvalidRequest(f"code is not valid Unicode: it contains a lone surrogate at position {exc.start}.",
                                 param="code") from exc
        async with live.lock:
            started = time.monotonic()
            restarted = await self.ensure_kernel(live)
            notice = None
            if live.unreported_reset:
                notice = TextOutput("notice", f"[{live.unreported_reset}]\n")
                live.unreported_reset = None
                if on_output is not None:
                    await on_output(notice)
            live.interrupt_requested = False
            async with self._run_queue.admitted():
                result, abandoned = await self._run_cell(live, code, timeout, on_output)
            status, error = await self._judge(live, result, timeout)
            # Files written before an error or a timeout count too; a lost sandbox's are out of reach.
            lost = error is not None and error.name == "SandboxLost"
            collected = Collected() if lost else await self._artifacts.collect(sandbox_id)
            live.sandbox = replace(live.sandbox, last_active_at=int(time.time()))
            live.last_used = time.monotonic()
        self._lifecycle.slots.changed()  # an idle sandbox can now be reclaimed for a caller waiting under the cap
        if abandoned:
            raise asyncio.CancelledError
        duration_ms = int((time.monotonic() - started) * 1000)
        if result.outcome not in ("ok", "error"):  # ended by the engine, not by the user's code
            log.warning("execution %s: %s", status, error.name if error else result.outcome,
                        extra={"container_id": sandbox_id, "ms": duration_ms})
        return Execution(
            id=f"exec_{secrets.token_hex(12)}", sandbox_id=sandbox_id, status=status,
            outputs=((notice,) if notice else ()) + result.outputs, error=error, duration_ms=duration_ms,
            kernel_restarted=restarted or live.needs_restart is not None, truncated_bytes=result.truncated_bytes,
            artifacts=collected.artifacts, artifacts_omitted=collected.omitted, artifacts_complete=collected.complete,
        )

    async def _run_cell(self, live: LiveSandbox, code: str, timeout: float,
                        on_output: OutputHook | None) -> tuple[CellResult, bool]:
        """Run one cell; (result, abandoned). A caller cancelled while its cell runs stops that cell and no other:
        the cell is interrupted, and the sandbox is handed on only once the kernel has settled (or is marked for a
        restart when it ignores the interrupt). A caller cancelled while still queued for the lock never gets
        here, so its cell never runs."""
        assert live.session is not None
        session = live.session
        cell = asyncio.ensure_future(session.execute(
            code, timeout, interrupt_grace=self._policy.interrupt_grace, max_text_bytes=self._policy.max_output_bytes,
            on_output=on_output, is_alive=lambda: self._lifecycle.kernel_alive(live)))
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
        live = self._lifecycle.registry.get(sandbox_id)
        if live.session is not None and live.lock.locked():
            live.interrupt_requested = True
            await live.session.interrupt()

    def check_timeout(self, timeout: float | None) -> float:
        """The timeout to use for a cell; InvalidRequest if it is out of range."""
        if timeout is None:
            return self._policy.default_timeout
        if not 0 < timeout <= self._policy.max_timeout:
            raise InvalidRequest(
                f"timeout must be greater than 0 and at most {self._policy.max_timeout:g} seconds.", param="timeout"
            )
        return float(timeout)

    async def _judge(self, live: LiveSandbox, result: CellResult,
                     timeout: float) -> tuple[ExecutionStatus, ExecutionError | None]:
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
            self.schedule_restart(live, notices.stuck(timeout))
            return "timed_out", ExecutionError("TimeoutError", notices.stuck(timeout))
        error = await self._death_error(live)
        if error.name == "ChannelLost":
            live.close_session()  # the next call reconnects to the kernel, which kept its state
        else:
            self.schedule_restart(live, error.value)
        return ("interrupted" if live.interrupt_requested else "failed"), error

    async def _death_error(self, live: LiveSandbox) -> ExecutionError:
        host = self._lifecycle.host_of(live.sandbox.id)
        try:
            if self._lifecycle.hosts.is_down(host):
                raise EngineUnavailable(host.name)
            state = await asyncio.to_thread(host.runtime.state, live.sandbox.id)
        except SandboxNotFound:
            return ExecutionError("KernelDied", f"The sandbox container was removed from outside. {notices.LOST}")
        except EngineUnavailable:
            hosts = self._lifecycle.hosts
            # The local engine restarting is answered as it always was (503, the sandbox kept); a remote one is
            # down only if it does not answer a ping either: one failed request is not a dead machine.
            if not hosts.is_watched(host) or (not hosts.is_down(host) and await asyncio.to_thread(host.alive)):
                raise
            # Nothing more is placed there until the host watch hears it again, and the next start places this
            # sandbox on a host that answers.
            hosts.mark_down(host)
            self._lifecycle.lose(live)
            return ExecutionError("SandboxLost", notices.HOST_LOST)
        if state.running:  # the exec carrying the kernel's channels ended, not the kernel
            return ExecutionError("ChannelLost", notices.CHANNEL_LOST)
        if state.oom_killed:
            return ExecutionError("OutOfMemoryError", f"The sandbox ran out of memory (limit "
                                  f"{live.sandbox.memory_limit}) and its kernel was killed. {notices.LOST}")
        return ExecutionError("KernelDied", f"The kernel process exited ({notices.describe_exit(state.exit_code)}). "
                                            f"{notices.LOST}")

    # ---- kernel health ---------------------------------------------------------------------------------------

    async def ensure_kernel(self, live: LiveSandbox) -> bool:
        """Make sure a ready kernel is connected; returns True if one had to be (re)started."""
        lifecycle = self._lifecycle
        if live.needs_restart is not None:
            await lifecycle.restart_kernel(live, live.needs_restart)
            return True
        if live.session is not None:
            transport = live.session.transport
            if transport is None or transport.open:
                return False
            live.close_session()  # a remote kernel's channel broke while idle: reconnected below if it still runs
        if live.sandbox.status == "expired":
            started = time.monotonic()
            await lifecycle.restart_kernel(live, None)
            lifecycle.hooks.acquired("rehydrate", time.monotonic() - started)
            return True
        # First use after recovery (or a broken channel): reconnect if the container survived, else start afresh.
        if await lifecycle.is_running(live.sandbox.id):
            host = lifecycle.host_of(live.sandbox.id)
            try:
                info = await asyncio.to_thread(host.saved_connection, live.sandbox.id)
                # Sealed and checked before connecting: a socket swapped for a link is never followed.
                await asyncio.to_thread(host.seal, live.sandbox.id, info)
                reached, transport = await asyncio.to_thread(host.reach, live.sandbox.id, info)
                live.session = lifecycle.connector.connect(reached, transport)
                await live.session.wait_ready(min(5.0, self._policy.kernel_start_timeout))
                return False
            except (KernelNotReady, OSError, ValueError, UnsafeRunDir, SandboxStartFailed) as exc:
                log.warning("could not reconnect to the kernel (%s); starting a fresh one", exc,
                            extra={"container_id": live.sandbox.id})
        await lifecycle.restart_kernel(live, None)
        live.unreported_reset = live.unreported_reset or notices.KERNEL_STOPPED
        return True

    def schedule_restart(self, live: LiveSandbox, reason: str) -> None:
        """Mark the kernel for restart and heal it in the background, so an idle sandbox comes back by itself."""
        live.needs_restart = reason

        async def heal() -> None:
            async with live.lock:
                if live.needs_restart is not None and live.sandbox.id in self._lifecycle.registry:
                    try:
                        await self._lifecycle.restart_kernel(live, live.needs_restart)
                    except EngineUnavailable as exc:  # no host answering now: the next call tries again
                        log.warning("background restart of %s failed: %s", live.sandbox.id, exc)
                    except Exception:
                        log.exception("background restart of %s failed", live.sandbox.id)

        self._lifecycle.spawn(heal())
