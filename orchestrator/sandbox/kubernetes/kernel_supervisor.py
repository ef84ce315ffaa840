"""The kernel container's first process on Kubernetes (issue 33), run as `python3 -I -c <this file> LIMITS`; an
exec of `python3 -I -c <this file> stop` stops the kernel, `... state` says how it is. Standalone: it runs in the
sandbox image, importing nothing of the server's.

A pod is never restarted in place, and its emptyDir (/mnt/data) lives as long as the pod: so the kernel is this
process's child, and can be stopped (a reclaim, a restart) and started again while the pod and its files stay.
It waits for the connection file an exec delivers (kernel_channel's delivery, as on Docker), starts the kernel on
it, and when the kernel ends records how, ends the kernel's process group and its relays (so the server sees the
channel close), and waits for the next connection. Being pid 1, it reaps orphans, and it never exits: its end
would end the pod, and the files with it.

The sandbox's code runs as the same uid, so it can write the state file and signal this process: it can only
misreport or stop its own kernel. What the supervisor acts on (the kernel's pid) it keeps in memory, a stop comes
as a signal (SIGUSR1), and the state file is read as a regular file of bounded size, never followed or waited on.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import stat
import subprocess
import sys
import time

RUN = "/tmp/toolshed-run"
CONNECTION = RUN + "/kernel.json"
IN_USE = RUN + "/kernel.in-use.json"
STATE = RUN + "/state.json"
OOM_EVENTS = "/sys/fs/cgroup/memory.events"
STOP_SIGNAL = signal.SIGUSR1
_STATE_LIMIT = 4096
_STOP_WAIT = 10.0


class Supervisor:
    def __init__(self) -> None:
        self.kernel: subprocess.Popen[bytes] | None = None
        self.stop_requested = False

    def on_stop(self, signum: int, frame: object) -> None:
        self.stop_requested = True
        if self.kernel is not None:
            kill(self.kernel.pid)

    def run_one(self) -> None:
        while not os.path.exists(CONNECTION):
            reap()
            time.sleep(0.01)
        self.stop_requested = False  # a stop asked while no kernel ran has nothing left to stop
        os.replace(CONNECTION, IN_USE)
        write_state({"running": True, "pid": None})  # starting: a stop from now on ends this kernel
        try:
            with open(IN_USE) as held:
                info = json.load(held)
            ports = [str(int(info[f"{name}_port"])) for name in ("shell", "iopub", "stdin", "control", "hb")]
        except (OSError, ValueError, KeyError, TypeError):
            write_state({"running": False, "exit_code": None, "oom_killed": False, "error": "bad connection"})
            return
        ooms = oom_kills()
        try:
            self.kernel = kernel = subprocess.Popen(["toolshed-kernel", IN_USE], start_new_session=True)
        except OSError as exc:  # EAGAIN, ENOMEM: recorded, and the next connection tries again
            write_state({"running": False, "exit_code": None, "oom_killed": False, "error": repr(exc)[:200]})
            return
        if self.stop_requested:
            kill(kernel.pid)
        write_state({"running": True, "pid": kernel.pid})
        while True:  # reaps every orphan too, until the kernel itself ends
            pid, status = os.waitpid(-1, 0)
            if pid == kernel.pid:
                break
        self.kernel = None
        code = os.waitstatus_to_exitcode(status)
        kill(-kernel.pid)  # what the kernel started, before anything can start again
        # Recorded before the relays end: the server, seeing its channel close, asks at once how the kernel ended.
        write_state({"running": False, "exit_code": 128 - code if code < 0 else code,
                     "oom_killed": oom_kills() > ooms})
        for pid in relay_pids(ports):
            kill(pid)
        reap()

    def serve(self) -> None:
        signal.signal(STOP_SIGNAL, self.on_stop)
        write_state({"running": False, "exit_code": None, "oom_killed": False})
        while True:
            try:
                self.run_one()
            except Exception as exc:  # noqa: BLE001 - pid 1 must outlive anything: its end is the pod's
                print(f"supervisor: {exc!r}", file=sys.stderr, flush=True)
                time.sleep(0.1)


def write_state(state: dict[str, object]) -> None:
    """Best effort: a full /tmp must not end the supervisor (the state then reads as it last was)."""
    part = f"{STATE}.{os.getpid()}.part"
    try:
        with open(part, "w") as out:
            json.dump(state, out)
        os.replace(part, STATE)
    except OSError as exc:
        print(f"supervisor: could not record the kernel's state: {exc!r}", file=sys.stderr, flush=True)


def read_state() -> dict[str, object]:
    """The state file if it is a regular file of sane size: a FIFO or a link planted there is not followed."""
    try:
        fd = os.open(STATE, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return {"running": False}
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > _STATE_LIMIT:
            return {"running": False, "error": "state file replaced"}
        state = json.loads(os.read(fd, _STATE_LIMIT))
    except (OSError, ValueError):
        return {"running": False}
    finally:
        os.close(fd)
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


def kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


def reap() -> None:
    """Collect orphans (and a killed kernel's process group) while no kernel is waited on."""
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass


def stop() -> None:
    """Drop a connection not yet taken, have pid 1 kill its kernel, and wait (at most _STOP_WAIT) until it has
    cleaned up after it; exit 1 if the kernel still runs then."""
    try:
        os.unlink(CONNECTION)
    except OSError:
        pass
    os.kill(1, STOP_SIGNAL)
    deadline = time.monotonic() + _STOP_WAIT
    while read_state().get("running") and time.monotonic() < deadline:
        time.sleep(0.01)
    if read_state().get("running"):
        sys.exit(1)


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
    Supervisor().serve()


if __name__ == "__main__":
    main()
