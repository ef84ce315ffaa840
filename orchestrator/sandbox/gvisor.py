"""Choosing the OCI runtime sandboxes start under: gVisor's `runsc` where it works, else `runc` (issue 31).

Under gVisor a sandbox's system calls go to a user-space kernel, not the host's. The kernel channel is ZMQ over
Unix sockets the kernel binds in its bind-mounted run dir; gVisor keeps such sockets inside the sandbox unless
runsc runs with `--host-uds=create`, so the probe checks exactly that: a socket bound in the container must be a
socket on the host. Registered without it (or not at all), `auto` falls back to runc and says why.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from orchestrator.sandbox.errors import EngineUnavailable
from orchestrator.sandbox.runtime import CONTAINER_RUN_DIR, DockerRuntime

log = logging.getLogger("toolshed.sandbox")

RuntimeMode = Literal["auto", "runsc", "runc"]
REGISTRATION = '{"runtimes": {"runsc": {"path": "/usr/bin/runsc", "runtimeArgs": ["--network=none", ' \
               '"--host-uds=create"]}}}'
_PROBE_SOCKET = "probe.sock"
_PROBE_COMMAND = ["python3", "-c", "import os, socket\n"
                  f"socket.socket(socket.AF_UNIX).bind('{CONTAINER_RUN_DIR}/{_PROBE_SOCKET}')\n"
                  "print(os.uname().release)"]


@dataclass(frozen=True)
class RuntimeChoice:
    """The OCI runtime new sandboxes start under, what was asked for, and why gVisor is not used (if not)."""

    name: str
    wanted: RuntimeMode
    problem: str | None = None


def choose_runtime(runtime: DockerRuntime, mode: RuntimeMode, gvisor_name: str, probe_root: Path) -> RuntimeChoice:
    """`runc` as asked; gVisor (`gvisor_name` in Docker) when it passes the probe; for `auto`, runc with a warning
    when it does not. An explicit `runsc` that fails is EngineUnavailable: no sandbox starts without gVisor."""
    if mode == "runc":
        return RuntimeChoice("runc", mode)
    problem = gvisor_problem(runtime, gvisor_name, probe_root)
    if problem is None:
        return RuntimeChoice(gvisor_name, mode)
    if mode == "runsc":
        raise EngineUnavailable(f"TOOLSHED_SANDBOX_RUNTIME=runsc, but {problem}")
    log.warning("sandboxes run under runc, NOT gVisor: %s", problem)
    return RuntimeChoice("runc", mode, problem)


def gvisor_problem(runtime: DockerRuntime, name: str, probe_root: Path) -> str | None:
    """Why sandboxes cannot run under the OCI runtime `name`, or None if a hardened probe container started under
    it and bound a Unix socket the host can see in its run dir."""
    registered = runtime.registered_runtimes()
    if name not in registered:
        return (f"Docker has no runtime named {name!r} (it has {', '.join(registered)}); `scripts/ensure_docker.sh` "
                f"registers it, or add {REGISTRATION} to /etc/docker/daemon.json and send dockerd SIGHUP")
    probe_root.mkdir(parents=True, exist_ok=True)
    probe_dir = Path(tempfile.mkdtemp(prefix="probe-", dir=probe_root))
    try:
        # The probe runs as the sandbox uid, which must be able to bind its socket here.
        os.chmod(probe_dir, 0o777)
        (probe_dir / "data").mkdir()
        code, output = runtime.using(name).probe(probe_dir, probe_dir / "data", _PROBE_COMMAND)
        if code != 0:
            return f"a sandbox does not start under {name!r} (exit {code}): {output.strip()[-400:]}"
        try:
            is_socket = stat.S_ISSOCK(os.lstat(probe_dir / _PROBE_SOCKET).st_mode)
        except FileNotFoundError:
            is_socket = False
        if not is_socket:
            return (f"a Unix socket bound in a {name!r} sandbox's run dir is not visible on the host, so the kernel "
                    f"channel cannot work; register runsc with \"--host-uds=create\" ({REGISTRATION})")
        log.info("sandboxes run under gVisor (%s; its kernel reports %s)", name, output.strip())
        return None
    finally:
        shutil.rmtree(probe_dir, ignore_errors=True)
