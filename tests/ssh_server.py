"""An OpenSSH server on 127.0.0.1 for the ssh:// sandbox-host tests, and the ssh client set-up that reaches it.

`sshd -D -e` runs as a child with a config, host key and authorized key of its own, made here under a fresh 0700
folder of /tmp, and accepts one key for one user: root, as the tests run as root. A dedicated user would need a
system account made (and removed) on this machine and in a group that can reach the Docker socket, that is root
by another name; root with `PermitRootLogin prohibit-password`, on loopback, with a key that lives only in this
root-owned 0700 folder gives a test nothing it does not already have.

The Docker engine "on the far side" is the one at `docker_socket` (the second dockerd of tests/second_dockerd.py,
never the local one): sessions get DOCKER_HOST pointing at it (sshd's SetEnv), which `docker system dial-stdio`
(docker-py's ssh transport) uses, and an ssh:// URL can name that socket for a unix-socket forward.

OpenSSH's client reads ~/.ssh of the user's passwd entry, not $HOME, so the client configuration reaches a
process through PATH: `bin/ssh` runs /usr/bin/ssh with `-F` this folder's config (the generated key,
known_hosts pinned to the generated host key, BatchMode, StrictHostKeyChecking).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

SSHD = "/usr/sbin/sshd"  # sshd re-executes itself, so it must be started by its absolute path
_PRIVSEP_DIR = Path("/run/sshd")  # Debian's sshd refuses to start without it; its init script makes it
_START_TIMEOUT = 30.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _keygen(path: Path, comment: str) -> str:
    """An ed25519 key pair without passphrase; the public key's line."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)], check=True,
                   capture_output=True)
    return path.with_suffix(".pub").read_text().strip()


def sshd_problem() -> str | None:
    """Why an sshd cannot run here, or None."""
    if os.geteuid() != 0:
        return "the ssh:// tests log in as root and need root to start sshd"
    missing = [name for name in (SSHD, "ssh", "ssh-keygen") if shutil.which(name) is None]
    return f"OpenSSH is not installed (missing {', '.join(missing)}; apt-get install openssh-server " \
           "openssh-client)" if missing else None


def _descendants(root: int) -> list[int]:
    """Every process below `root`, from /proc's parent links."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                # The command name, in parentheses, may hold spaces: the parent pid is the 2nd field after it.
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class SshServer:
    """One sshd on 127.0.0.1:<free port> for `user` (root), whose sessions see the engine at `docker_socket`."""

    def __init__(self, docker_socket: Path, *, permit_tty: bool = True) -> None:
        self.permit_tty = permit_tty  # off: a forward gets no pty session, so no TCP_NODELAY (ssh_forward.py)
        self.root = Path(tempfile.mkdtemp(prefix="tss-", dir="/tmp"))  # 0700, short: it holds socket paths
        self.port = _free_port()
        self.user = pwd.getpwuid(os.geteuid()).pw_name
        self.docker_socket = docker_socket
        self.server_dir, self.client_dir, self.bin_dir = self.root / "server", self.root / "client", self.root / "bin"
        self.log = self.root / "sshd.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._made_privsep = False

    @property
    def destination(self) -> str:
        """user@127.0.0.1:port, as an ssh:// URL's authority."""
        return f"{self.user}@127.0.0.1:{self.port}"

    def client_env(self) -> dict[str, str]:
        """What a process needs in its environment for `ssh` to reach this server: the wrapper first in PATH."""
        return {"PATH": f"{self.bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}"}

    def _write_server(self) -> None:
        self.server_dir.mkdir(mode=0o700)
        self.client_dir.mkdir(mode=0o700)
        self.host_public = _keygen(self.server_dir / "host_ed25519", "toolshed test host")
        client_public = _keygen(self.client_dir / "id_ed25519", "toolshed test client")
        (self.server_dir / "authorized_keys").write_text(client_public + "\n")
        config = [
            f"ListenAddress 127.0.0.1:{self.port}",
            f"HostKey {self.server_dir / 'host_ed25519'}",
            f"AuthorizedKeysFile {self.server_dir / 'authorized_keys'}",
            "AuthorizedPrincipalsFile none", "PidFile none",
            f"AllowUsers {self.user}", "PermitRootLogin prohibit-password",
            "PubkeyAuthentication yes", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
            "HostbasedAuthentication no", "UsePAM no",
            # StrictModes checks every folder above the key file and refuses /tmp (world-writable, sticky); the
            # key's own folder is this root-owned 0700 one.
            "StrictModes no",
            # Unix-socket forwards (-L to the engine's socket) and sessions (dial-stdio). sshd lets a -L reach a
            # socket only if it allows local TCP forwards too ("AllowTcpForwarding no" denies both).
            "AllowStreamLocalForwarding local", "AllowTcpForwarding local", "AllowAgentForwarding no",
            "X11Forwarding no", "PermitTunnel no", f"PermitTTY {'yes' if self.permit_tty else 'no'}",
            "PermitUserEnvironment no",
            "PrintMotd no", "PrintLastLog no", "UseDNS no", "LogLevel VERBOSE",
            f"SetEnv DOCKER_HOST=unix://{self.docker_socket}",
        ]
        (self.server_dir / "sshd_config").write_text("\n".join(config) + "\n")

    def _write_client(self) -> None:
        host_type, host_key = self.host_public.split()[:2]
        (self.client_dir / "known_hosts").write_text(f"[127.0.0.1]:{self.port} {host_type} {host_key}\n")
        config = [
            "Host 127.0.0.1",
            f"  IdentityFile {self.client_dir / 'id_ed25519'}", "  IdentitiesOnly yes",
            f"  UserKnownHostsFile {self.client_dir / 'known_hosts'}", "  GlobalKnownHostsFile /dev/null",
            "  StrictHostKeyChecking yes", "  UpdateHostKeys no", "  CheckHostIP no", "  BatchMode yes",
            "  PasswordAuthentication no", "  KbdInteractiveAuthentication no",
            "Host *", "  BatchMode yes", "  StrictHostKeyChecking yes",
        ]
        (self.client_dir / "config").write_text("\n".join(config) + "\n")
        self.bin_dir.mkdir(mode=0o700)
        wrapper = self.bin_dir / "ssh"
        wrapper.write_text(f'#!/bin/sh\nexec /usr/bin/ssh -F {self.client_dir / "config"} "$@"\n')
        wrapper.chmod(0o700)

    def start(self) -> SshServer:
        """Write the keys and configs, start sshd and wait until a login runs a command; RuntimeError (with the
        log) if it does not."""
        if not _PRIVSEP_DIR.exists():
            _PRIVSEP_DIR.mkdir(mode=0o755)
            self._made_privsep = True
        self._write_server()
        self._write_client()
        check = subprocess.run([SSHD, "-t", "-f", str(self.server_dir / "sshd_config")], capture_output=True,
                               text=True, check=False)
        if check.returncode != 0:
            raise RuntimeError(f"sshd rejects its config: {check.stderr}")
        with self.log.open("wb") as log:
            # A session of its own: stop() and kill() reach the per-connection children too.
            self._process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.server_dir / "sshd_config")],
                                             stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                             start_new_session=True)
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline and self._process.poll() is None:
            if self.ssh("true", timeout=10).returncode == 0:
                return self
            time.sleep(0.2)
        tail = self.log_tail()
        self.stop()
        raise RuntimeError(f"sshd did not let the test client in:\n{tail}")

    def ssh(self, *command: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run `command` over ssh as the tests' client would (through the wrapper)."""
        return subprocess.run([str(self.bin_dir / "ssh"), "-p", str(self.port), f"{self.user}@127.0.0.1",
                               *command], capture_output=True, text=True, timeout=timeout, check=False,
                              stdin=subprocess.DEVNULL)

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def kill(self) -> None:
        """SIGKILL sshd and every connection it serves at once, as a machine dropping off the network would
        look to its clients."""
        self._signal_all(signal.SIGKILL)

    def kill_client(self, pid: int) -> None:
        """SIGKILL one of clients(): a forward dying while its server and sshd run on."""
        os.kill(pid, signal.SIGKILL)

    def _signal_all(self, sig: signal.Signals) -> None:
        """`sig` to sshd and its descendants: each connection's sshd calls setsid(), so its process group alone
        would miss them, and once sshd is gone they are no longer its children."""
        if self._process is None or self._process.poll() is not None:
            return
        for pid in [self._process.pid, *_descendants(self._process.pid)]:
            with contextlib.suppress(OSError):
                os.kill(pid, sig)
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=10)

    def restart(self) -> None:
        """sshd again on the same port, keys and config (after kill())."""
        with self.log.open("ab") as log:
            self._process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.server_dir / "sshd_config")],
                                             stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                             start_new_session=True)
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline and self.ssh("true", timeout=10).returncode != 0:
            time.sleep(0.2)

    def stop(self) -> None:
        """SIGTERM sshd and its connections (SIGKILL if they linger); then the folder."""
        self._signal_all(signal.SIGTERM)
        shutil.rmtree(self.root, ignore_errors=True)
        if self._made_privsep:
            with contextlib.suppress(OSError):
                _PRIVSEP_DIR.rmdir()

    @staticmethod
    def _matching(marker: bytes) -> list[int]:
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and int(entry.name) != os.getpid():
                with contextlib.suppress(OSError):
                    if marker in (entry / "cmdline").read_bytes():
                        found.append(int(entry.name))
        return found

    def clients(self) -> list[int]:
        """The pids of ssh clients using this server's client config (the Toolshed server's forwards)."""
        return [pid for pid in self._matching(str(self.client_dir / "config").encode())
                if Path(f"/proc/{pid}/comm").read_text().strip() == "ssh"]

    def leftovers(self) -> list[str]:
        """What is still here after stop(): processes naming its folder, or the folder (empty when clean)."""
        found = [f"process {pid}" for pid in self._matching(str(self.root).encode())]
        if self._process is not None:
            found += [f"sshd {pid}" for pid in [self._process.pid, *_descendants(self._process.pid)]
                      if Path(f"/proc/{pid}").exists() and self._process.poll() is None]
        return found + ([f"folder {self.root}"] if self.root.exists() else [])
