"""The kernel container's first process on Kubernetes (issue 33), run as `python3 -c <this file> LIMITS`; an exec
of `python3 -c <this file> stop` stops the kernel. Standalone: it runs in the sandbox image, importing nothing of
the server's.

A pod is never restarted in place, and its emptyDir (/mnt/data) lives as long as the pod: so the kernel is this
process's child, and can be stopped (a reclaim, a restart) and started again while the pod and its files stay.
It waits for the connection file an exec delivers (kernel_channel's delivery, as on Docker), starts the kernel on
it, and when the kernel ends records how, ends the kernel's process group and its relays (so the server sees the
channel close), and waits for the next connection. Being pid 1, it also reaps orphans.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time

RUN = "/tmp/toolshed-run"
CONNECTION = RUN + "/kernel.json"
IN_USE = RUN + "/kernel.in-use.json"
STATE = RUN + "/state.json"
OOM_EVENTS = "/sys/fs/cgroup/memory.events"


def write_state(state: dict[str, object]) -> None:
    part = STATE + ".part"
    with open(part, "w") as out:
        json.dump(state, out)
    os.replace(part, STATE)


def read_state() -> dict[str, object]:
    try:
        with open(STATE) as held:
            state = json.load(held)
    except (OSError, ValueError):
        return {"running": False}
    return state if isinstance(state, dict) else {"running": False}


def oom_kills() -> int:
    try:
        with open(OOM_EVENTS) as events:
            return next((int(line.split()[1]) for line in events if line.startswith("oom_kill ")), 0)
    except (OSError, ValueError, IndexError):
        return 0


def relay_pids(ports: list[str]) -> list[int]:
    """The kernel relays of this kernel: processes whose last arguments are its ports (kernel_channel starts each
    as `python3 -c <relay> <max bytes> <ports...>`)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as cmdline:
                args = cmdline.read().split(b"\0")[:-1]
        except OSError:
            continue
        if len(args) > len(ports) and [a.decode(errors="replace") for a in args[-len(ports):]] == ports:
            found.append(int(name))
    return found


def run_one() -> None:
    while not os.path.exists(CONNECTION):
        time.sleep(0.01)
    os.replace(CONNECTION, IN_USE)
    with open(IN_USE) as held:
        info = json.load(held)
    ports = [str(info[f"{name}_port"]) for name in ("shell", "iopub", "stdin", "control", "hb")]
    ooms = oom_kills()
    kernel = subprocess.Popen(["toolshed-kernel", IN_USE], start_new_session=True)
    write_state({"running": True, "pid": kernel.pid})
    while True:  # reaps every orphan too, until the kernel itself ends
        pid, status = os.waitpid(-1, 0)
        if pid == kernel.pid:
            break
    code = os.waitstatus_to_exitcode(status)
    kill(-kernel.pid)  # what the kernel started, before anything can start again
    # Recorded before the relays end: the server, seeing its channel close, asks at once how the kernel ended.
    write_state({"running": False, "exit_code": 128 - code if code < 0 else code, "oom_killed": oom_kills() > ooms})
    for pid in relay_pids(ports):
        kill(pid)
    os.unlink(IN_USE)


def kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


def stop() -> None:
    """Kill the kernel and wait until its supervisor has cleaned up after it (at most 10 s)."""
    state = read_state()
    pid = state.get("pid")
    if state.get("running") and isinstance(pid, int) and pid > 1:
        kill(pid)
        deadline = time.monotonic() + 10
        while read_state().get("running") and time.monotonic() < deadline:
            time.sleep(0.01)


def main() -> None:
    if sys.argv[1:] == ["stop"]:
        stop()
        return
    if sys.argv[1:] == ["state"]:
        print(json.dumps(read_state()))
        return
    open_files, nproc = int(sys.argv[1]), int(sys.argv[2])
    resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))
    if nproc:  # under runc RLIMIT_NPROC would count every process of this uid on the node
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
    os.umask(0o077)
    os.makedirs(RUN, mode=0o700, exist_ok=True)
    write_state({"running": False, "exit_code": None, "oom_killed": False})
    while True:
        run_one()


if __name__ == "__main__":
    main()
