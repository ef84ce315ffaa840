"""LibreChat's `POST /exec` on Toolshed's sandboxes.

A request that names a runtime session (`runtime_session_hint`, or the legacy `entity_id` / `user_id`) runs in that
session's sandbox, which keeps its files and Python state; any other request runs in a sandbox of its own, deleted
once it has answered (LibreChat's stateless default). Input files are placed in /mnt/data by reference, every
file the code writes there comes back in `files` (kept under the execution's `session_id` for download), and
`bash` runs as a shell in the same sandbox.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field

from orchestrator.sandbox.models import Execution, Output, TextOutput
from orchestrator.services.container import Services
from orchestrator.services.container_files import CONTAINER_DATA_DIR
from orchestrator.services.storage import FileNotFound
from orchestrator.wires.librechat.auth import LibreChatCaller

log = logging.getLogger("toolshed.librechat")
SCOPE = "librechat"
_releasing: set[asyncio.Task[None]] = set()
LANGUAGES = {"py": "python", "python": "python", "bash": "bash", "sh": "bash"}
# Node's fetch gives up on a silent connection; whitespace before the JSON keeps it waiting (JSON allows it).
KEEPALIVE_SECONDS = 3.0


class FileRef(BaseModel):
    id: str
    name: str
    session_id: str | None = None
    storage_session_id: str | None = None


class ExecRequest(BaseModel):
    lang: str
    code: str
    args: list[str] = Field(default_factory=list)
    files: list[FileRef] = Field(default_factory=list)
    runtime_session_hint: str | None = None
    entity_id: str | None = None
    user_id: str | None = None

    def runtime_session(self) -> str | None:
        return self.runtime_session_hint or self.entity_id or self.user_id


def new_session_id() -> str:
    return secrets.token_hex(12)


def cell_code(lang: str, code: str, args: list[str]) -> str:
    """Python for the kernel: the code itself, or a shell running it in /mnt/data with its output passed on."""
    if LANGUAGES[lang] == "python":
        return code if not args else f"import sys as _toolshed_sys\n_toolshed_sys.argv = {['-', *args]!r}\n{code}"
    return ("(lambda r: (__import__('sys').stdout.write(r.stdout), __import__('sys').stderr.write(r.stderr)))"
            f"(__import__('subprocess').run(['bash', '-c', {code!r}, 'bash', *{args!r}], cwd={CONTAINER_DATA_DIR!r},"
            " capture_output=True, text=True));")


@dataclass
class ExecResult:
    session_id: str
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    files: list[dict[str, str]] = field(default_factory=list)
    traceback_shown: bool = False

    async def on_output(self, output: Output) -> None:
        if not isinstance(output, TextOutput):
            return  # a displayed figure: LibreChat shows only saved files
        if output.kind == "result":  # the value of the last line, as a script's print would show it
            self.stdout.append(output.text if output.text.endswith("\n") else output.text + "\n")
        elif output.kind == "stdout":
            self.stdout.append(output.text)
        else:
            self.traceback_shown = self.traceback_shown or output.kind == "error"
            self.stderr.append(output.text)

    def body(self) -> dict[str, Any]:
        return {"session_id": self.session_id, "stdout": "".join(self.stdout), "stderr": "".join(self.stderr),
                "files": self.files}


@dataclass(frozen=True)
class Prepared:
    """An execution whose sandbox is ready and whose input files are in place."""

    container_id: str
    key: str
    runtime: str | None
    request: ExecRequest
    user: str


class LibreChatExec:
    def __init__(self, services: Services) -> None:
        self._services = services

    async def prepare(self, who: LibreChatCaller, request: ExecRequest) -> Prepared:
        """Everything that can fail as the caller's error (an unknown file, a project limit), before any byte of
        the answer is sent."""
        for ref in request.files:  # another project's file answers as an unknown one, and is never placed
            if not self._services.owners.sees(who.caller, ref.id):
                raise FileNotFound(ref.id)
        runtime = request.runtime_session()
        key = who.key(f"runtime/{runtime}" if runtime else f"exec/{new_session_id()}")
        bindings = self._services.require_sandboxes().bindings
        try:
            container_id = await bindings.sandbox_for(SCOPE, key, [f.id for f in request.files], who.caller.project)
        except BaseException:
            if not runtime:  # an input file could not be placed: the one-off sandbox goes at once
                await bindings.release(SCOPE, key)
            raise
        return Prepared(container_id, key, runtime, request, who.user)

    def start(self, prepared: Prepared) -> asyncio.Task[dict[str, Any]]:
        """The execution as a task; a one-off sandbox is deleted when it ends, however it ends (a task cancelled
        before it began runs none of its own code)."""
        work = asyncio.get_running_loop().create_task(self._run(prepared))
        if not prepared.runtime:
            work.add_done_callback(lambda _: self._release(prepared.key))
        return work

    def _release(self, key: str) -> None:
        release = asyncio.get_running_loop().create_task(
            self._services.require_sandboxes().bindings.release(SCOPE, key))
        _releasing.add(release)  # kept referenced until done, or the loop may drop it half-way
        release.add_done_callback(_releasing.discard)

    async def _run(self, prepared: Prepared) -> dict[str, Any]:
        request, result = prepared.request, ExecResult(new_session_id())
        execution = await self._services.require_sandboxes().interpreter.execute(
            prepared.container_id, cell_code(request.lang, request.code, request.args), result.on_output)
        self._finish(result, execution, prepared.user)
        return result.body()

    def _finish(self, result: ExecResult, execution: Execution, user: str) -> None:
        if execution.error is not None and not result.traceback_shown:  # a timeout, OOM, a dead kernel
            traceback = "\n".join(execution.error.traceback)
            result.stderr.append(traceback + "\n" if traceback else f"{execution.error.name}: "
                                                                   f"{execution.error.value}\n")
        sessions = self._services.librechat_files
        for artifact in execution.artifacts:
            if artifact.file_id is None:
                result.stderr.append(f"{artifact.path} was not kept: {artifact.error}\n")
                continue
            name = artifact.path.removeprefix(f"{CONTAINER_DATA_DIR}/")
            sessions.record(result.session_id, artifact.file_id, name, user)
            result.files.append({"id": artifact.file_id, "name": name, "path": artifact.path})


async def stop(work: asyncio.Task[dict[str, Any]]) -> None:
    """Cancel the execution (interrupting its cell) unless it has finished. Run after the response however it
    ended: a client gone before the body began never starts `with_keepalive`, whose own `finally` then never runs."""
    if not work.done():
        work.cancel()
        await asyncio.wait({work})


async def with_keepalive(work: asyncio.Task[dict[str, Any]]) -> AsyncIterator[bytes]:
    """The JSON body of `work`, preceded by a space every few seconds while it runs; cancelled with the
    response (the client went away), the work is cancelled too, which interrupts the cell."""
    try:
        while True:
            done, _ = await asyncio.wait({work}, timeout=KEEPALIVE_SECONDS)
            if done:
                break
            yield b" "
        try:
            body = work.result()
        except Exception as exc:  # the status line has gone: the failure goes where LibreChat shows it
            log.exception("a LibreChat execution failed")
            body = {"session_id": "", "stdout": "", "stderr": f"Execution failed: {exc}\n", "files": []}
        yield json.dumps(body).encode()
    finally:
        work.cancel()
