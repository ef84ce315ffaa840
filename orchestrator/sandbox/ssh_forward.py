"""An ssh:// sandbox host's Docker socket, forwarded to a private Unix socket of this machine by OpenSSH.

docker-py's own ssh transports cannot carry the attached exec streams the kernel relay and the file agent use:
with `use_ssh_client` its "socket" is an unconnected TCP socket standing in for the pipes of an `ssh ... docker
system dial-stdio` child (polling its descriptor reports a hang-up at once, recv(n) blocks until n bytes or the
end, timeouts and non-blocking mode apply to nothing), and paramiko, which it needs in every case, is not a
dependency; its channels raise TimeoutError for "no data yet" and its client is never reconnected once its
transport dies. A forward instead makes an ssh:// host a unix:// one, whose streams are real sockets:

    ssh -N -L <0700 temp dir>/docker.sock:<remote socket> [-p port] [user@]host

The URL's path names the remote socket (ssh://user@host/run/user/1000/docker.sock); /var/run/docker.sock without
one. Authentication, host keys and options are OpenSSH's own (the server user's ~/.ssh/config and known_hosts);
BatchMode keeps a missing key or an unknown host key from waiting on a prompt nobody sees.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import math
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from orchestrator.sandbox.errors import EngineUnavailable

log = logging.getLogger("toolshed.sandbox")
DEFAULT_REMOTE_SOCKET = "/var/run/docker.sock"
START_TIMEOUT = 15.0
_STOP_GRACE = 5.0
_ERRORS_KEPT = 2000
# sun_path holds 108 bytes on Linux, the terminating NUL included.
_MAX_SOCKET_PATH = 100


def is_ssh(endpoint: str) -> bool:
    return endpoint.startswith("ssh://")


@dataclass(frozen=True)
class SshTarget:
    """What `ssh` needs of an ssh:// endpoint."""

    destination: str  # host, or user@host
    port: int | None
    remote_socket: str


def parse_endpoint(endpoint: str) -> SshTarget:
    """The parts of ssh://[user@]host[:port][/remote/socket]; EngineUnavailable for anything else."""
    try:
        parts = urlsplit(endpoint)
        port = parts.port
    except ValueError as exc:
        raise EngineUnavailable(f"{endpoint}: not an ssh://[user@]host[:port][/socket] URL ({exc})") from exc
    host, user, remote = parts.hostname, unquote(parts.username or ""), unquote(parts.path) or DEFAULT_REMOTE_SOCKET
    if parts.scheme != "ssh" or not host or parts.password is not None or parts.query or parts.fragment:
        raise EngineUnavailable(f"{endpoint}: not an ssh://[user@]host[:port][/socket] URL (no password: "
                                "keys only)")
    # A leading "-" would be read as an option; ":" splits -L's two sockets.
    if host.startswith("-") or user.startswith("-") or ":" in remote:
        raise EngineUnavailable(f"{endpoint}: refused (a host or user starting with '-', or ':' in the socket)")
    return SshTarget(f"{user}@{host}" if user else host, port, remote)


class SshForward:
    """One `ssh -N -L` child for one host. start() once; ensure() restarts it if it died (the host watch calls it
    through RemoteHost.alive, so a dropped connection comes back within a check); close() stops it for good.

    The child stays in this process's group, so a Ctrl-C, a systemd stop (the unit's cgroup) or a container
    stop ends it with the server, and an exit closes it; a server killed alone by SIGKILL leaves it behind,
    holding only a socket in a 0700 folder."""

    def __init__(self, endpoint: str) -> None:
        self._target = parse_endpoint(endpoint)
        self._endpoint = endpoint
        folder = tempfile.mkdtemp(prefix="tsf-")  # 0700: only this uid reaches the socket, and so the engine
        if len(folder) + len("/docker.sock") > _MAX_SOCKET_PATH or ":" in folder:
            shutil.rmtree(folder, ignore_errors=True)
            folder = tempfile.mkdtemp(prefix="tsf-", dir="/tmp")
        self._folder = Path(folder)
        self.socket = self._folder / "docker.sock"
        self._errors = self._folder / "ssh.err"
        self._control = self._folder / "ctl"
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._closed, self._failing, self._told_slow = False, False, False
        # A host dropped without close() (one left out at start) would keep its ssh past the server's exit.
        atexit.register(self.close)

    @property
    def url(self) -> str:
        """The forwarded engine, for docker-py."""
        return f"unix://{self.socket}"

    @property
    def errors(self) -> str:
        """The end of what the last ssh wrote to stderr (why it could not log in, or open the remote socket)."""
        with contextlib.suppress(OSError):
            return self._errors.read_bytes()[-_ERRORS_KEPT:].decode(errors="replace").strip()
        return ""

    def _ssh(self) -> tuple[str, list[str]]:
        """The ssh binary, and the port arguments."""
        ssh = shutil.which("ssh")
        if ssh is None:
            raise EngineUnavailable(f"{self._endpoint}: an ssh:// sandbox host needs OpenSSH's `ssh` client")
        return ssh, ["-p", str(self._target.port)] if self._target.port is not None else []

    def _command(self, timeout: float) -> list[str]:
        ssh, port = self._ssh()
        options = {
            "BatchMode": "yes", "ExitOnForwardFailure": "yes", "ConnectTimeout": str(math.ceil(timeout)),
            # A peer that vanishes without a word (a cable, a frozen machine) ends the forward within 15 s, and
            # ensure() starts another; the host watch's pings notice far sooner.
            "ServerAliveInterval": "5", "ServerAliveCountMax": "3",
            # A master of its own, in the private folder: for _no_delay's session, and no other connection's
            # master to outlive this forward or die under it.
            "ControlMaster": "yes", "ControlPath": str(self._control),
            "ControlPersist": "no",  # a persisting master forks away: the child here would look dead at once
            "StreamLocalBindUnlink": "yes", "StreamLocalBindMask": "0177",
        }
        return [ssh, "-N", "-T", *(f"-o{key}={value}" for key, value in options.items()), *port,
                "-L", f"{self.socket}:{self._target.remote_socket}", "--", self._target.destination]

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start the forward and wait until its socket accepts; EngineUnavailable (with ssh's errors) if it
        does not within `timeout`."""
        with self._lock:
            self._start(timeout)

    def _start(self, timeout: float) -> None:
        if self._closed:
            raise EngineUnavailable(f"{self._endpoint}: its ssh forward was closed")
        for leftover in (self.socket, self._control):  # a dead forward's: the socket's is what "ready" means
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
        with self._errors.open("wb") as errors:
            process = subprocess.Popen(self._command(timeout), stdin=subprocess.DEVNULL,
                                       stdout=subprocess.DEVNULL, stderr=errors)
        self._process = process
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise EngineUnavailable(f"{self._endpoint}: ssh exited ({process.returncode}): {self.errors}")
            # ssh binds the local socket once logged in; accepting a connection is what "ready" means (the file
            # exists a moment before listen()).
            if self.socket.exists() and _accepts(self.socket):
                self._no_delay(deadline)
                return
            time.sleep(0.02)
        _stop(process)
        raise EngineUnavailable(f"{self._endpoint}: ssh did not set up its forward within {timeout:.0f} s: "
                                f"{self.errors}")

    def _no_delay(self, deadline: float) -> None:
        """sshd turns Nagle's algorithm off (TCP_NODELAY) only for a connection whose first session has a pty: on
        a bare -N forward, an answer written in two small pieces waits out the peer's delayed ACK, ~40 ms per
        round trip (a trivial cell took 48 ms instead of 6 over loopback). One short pty session through this
        forward's master sets it for the connection's life. Where a pty is refused (PermitTTY no, a no-pty
        key) or the session fails, the forward works as it is, slower, and that is said once."""
        ssh, port = self._ssh()
        command = [ssh, "-tt", "-oBatchMode=yes", "-oControlMaster=no", f"-oControlPath={self._control}", *port,
                   "--", self._target.destination, "true"]
        # A terminal of our own for its stdin: the master copies its modes (tcgetattr) for the remote pty, and
        # says so in the forward's stderr if it cannot.
        leader, follower = os.openpty()
        try:
            done = subprocess.run(command, stdin=follower, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  check=False, timeout=max(1.0, min(5.0, deadline - time.monotonic())))
            said = done.stderr[-300:].decode(errors="replace").strip()
            # A refused pty is not an error to ssh: the command runs without one, and it says so.
            problem = f"exit {done.returncode}: {said}" if done.returncode or "PTY allocation" in said else ""
        except subprocess.TimeoutExpired:
            problem = "no answer"
        finally:
            os.close(leader)
            os.close(follower)
        if problem and not self._told_slow:
            log.warning("%s: no pty session for TCP_NODELAY (%s): each round trip to the engine may take ~40 ms "
                        "more", self._endpoint, problem)
            self._told_slow = True

    def ensure(self, timeout: float) -> bool:
        """Whether the forward runs, restarting it if it died; False if it cannot be restarted now."""
        with self._lock:
            if self._closed:
                return False
            if self._process is not None and self._process.poll() is None:
                return True
            # Said once per outage: while the host is away every check of the host watch tries again.
            if self._process is not None and not self._failing:
                log.warning("the ssh forward to %s ended (exit %s): %s; starting another", self._endpoint,
                            self._process.returncode, self.errors or "no message")
            try:
                self._start(timeout)
            except EngineUnavailable as exc:
                if not self._failing:
                    log.warning("%s (tried again at each check of the host)", exc)
                self._failing = True
                return False
            self._failing = False
            return True

    def close(self) -> None:
        atexit.unregister(self.close)
        with self._lock:
            self._closed = True
            if self._process is not None:
                _stop(self._process)
        shutil.rmtree(self._folder, ignore_errors=True)


def _accepts(path: Path) -> bool:
    # The connection goes on to the remote socket, and ends there unused: docker answers nothing unasked.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=_STOP_GRACE)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=_STOP_GRACE)
