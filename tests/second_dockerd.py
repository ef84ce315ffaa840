"""A second, separate Docker engine on this machine for the remote-sandbox tests (issue 33): its own data-root,
exec-root, pid file, managed containerd, config file and unix socket, and its API on a loopback TCP port behind
mutual TLS (certificates made here). It has a bridge of its own, made here and removed at stop (`--bridge=none`
is not an option: dockerd then deletes the host's `docker0`, the local engine's default bridge), and writes no
iptables rules, so the local engine's networking is left as it was; `network_snapshot` lets a test check that.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import docker
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# As scripts/ensure_docker.sh registers gVisor, less --host-uds=create: a remote sandbox binds no socket the
# server could reach through a shared folder, so it needs no host sockets at all.
RUNSC = {"path": "/usr/bin/runsc", "runtimeArgs": ["--network=none"]}
_START_TIMEOUT, _STOP_GRACE = 90.0, 30.0
# Fixed, so the client asks nothing before its TLS settings are in place (dockerd 20.10 speaks 1.41).
API_VERSION = "1.41"


@dataclass(frozen=True)
class Certificates:
    """PEM files: the CA both sides trust, the daemon's server pair and the test client's pair."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _pair(folder: Path, name: str, subject: str, issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
          *, server: bool = False) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    issuer_cert, issuer_key = issuer if issuer else (None, key)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(issuer_cert.subject if issuer_cert else
                            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True))
    if issuer is not None:
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    cert = builder.sign(issuer_key, hashes.SHA256())
    (folder / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file = folder / f"{name}-key.pem"
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_file.chmod(0o600)
    return cert, key


def make_certificates(folder: Path) -> Certificates:
    """A throwaway CA, a server certificate for 127.0.0.1 and a client certificate, all signed by that CA."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    ca = _pair(folder, "ca", "toolshed test CA", None)
    _pair(folder, "server", "127.0.0.1", ca, server=True)
    _pair(folder, "client", "toolshed server", ca)
    return Certificates(folder / "ca.pem", folder / "server.pem", folder / "server-key.pem", folder / "client.pem",
                        folder / "client-key.pem")


def network_snapshot(local: docker.DockerClient, own_bridge: str = "") -> dict[str, object]:
    """What the second engine must never change: the local engine's networks, the host's firewall rules, its
    interfaces (but the second engine's own bridge) and IP forwarding."""
    def rules(command: str) -> list[str]:
        out = subprocess.run([command], capture_output=True, text=True, check=False).stdout
        # Comments carry a timestamp and counters change with traffic: compare the rules themselves.
        return [line.split(" [", 1)[0] for line in out.splitlines() if not line.startswith("#")]
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=False).stdout
    return {"networks": sorted((n.id, n.name) for n in local.networks.list()),
            "iptables": rules("iptables-save"), "ip6tables": rules("ip6tables-save"),
            "links": sorted(name for line in links.splitlines() if (name := line.split(":")[1].strip()) != own_bridge),
            "ip_forward": Path("/proc/sys/net/ipv4/ip_forward").read_text()}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SecondDockerd:
    """One extra dockerd under a fresh folder of /tmp (short: socket paths are capped at 107 bytes)."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="tsd-", dir="/tmp"))
        self.certs = make_certificates(self.root / "certs")
        self.port = _free_port()
        self.socket = self.root / "docker.sock"
        self.bridge = f"tsd{secrets.token_hex(4)}"  # at most 15 bytes, as Linux allows
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def _command(self) -> list[str]:
        config = self.root / "daemon.json"
        config.write_text(json.dumps({"runtimes": {"runsc": RUNSC}}))
        c = self.certs
        return ["dockerd", f"--config-file={config}", f"--data-root={self.root / 'data'}",
                f"--exec-root={self.root / 'exec'}", f"--pidfile={self.root / 'docker.pid'}",
                f"-H=unix://{self.socket}", f"-H=tcp://127.0.0.1:{self.port}", "--tlsverify",
                f"--tlscacert={c.ca}", f"--tlscert={c.server_cert}", f"--tlskey={c.server_key}",
                f"--bridge={self.bridge}", "--iptables=false", "--ip6tables=false", "--ip-forward=false",
                "--ip-masq=false",
                # Its own containerd namespaces too, in case a system containerd's socket shows up and dockerd
                # uses it instead of starting its own (it does when /run/containerd/containerd.sock exists).
                "--containerd-namespace=toolshed-second", "--containerd-plugins-namespace=toolshed-second-plugins"]

    def _make_bridge(self) -> None:
        """Its own bridge, on an address from the benchmarking range (198.18.0.0/15), which no real network uses."""
        subnet = f"198.18.{secrets.randbelow(250) + 1}"
        for command in (["ip", "link", "add", "name", self.bridge, "type", "bridge"],
                        ["ip", "addr", "add", f"{subnet}.1/24", "dev", self.bridge],
                        ["ip", "link", "set", self.bridge, "up"]):
            subprocess.run(command, check=True, capture_output=True)

    def start(self) -> None:
        """Start it and wait until its TLS API answers; RuntimeError (with its log) if it does not."""
        self._make_bridge()
        log = (self.root / "dockerd.log").open("wb")
        self._process = subprocess.Popen(self._command(), stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            with contextlib.suppress(Exception):
                if self.client(timeout=5).ping():
                    return
            time.sleep(0.5)
        raise RuntimeError(f"the second dockerd did not come up:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        text = (self.root / "dockerd.log").read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def tls(self, *, with_client_cert: bool = True) -> docker.tls.TLSConfig:
        cert = (str(self.certs.client_cert), str(self.certs.client_key)) if with_client_cert else None
        return docker.tls.TLSConfig(client_cert=cert, ca_cert=str(self.certs.ca), verify=True)

    def client(self, *, timeout: int = 120, with_client_cert: bool = True) -> docker.DockerClient:
        """A client of its TCP endpoint, as a remote server would have (the unix socket is for clean-up only)."""
        client = docker.DockerClient(base_url=f"https://127.0.0.1:{self.port}", timeout=timeout, version=API_VERSION,
                                     tls=self.tls(with_client_cert=with_client_cert))
        # requests lets REQUESTS_CA_BUNDLE (set on this machine) override the session's CA: trust only ours.
        client.api.trust_env = False
        return client

    def load_image(self, local: docker.DockerClient, tag: str) -> None:
        """Copy `tag` from the local engine through both APIs: its export streams straight into this load."""
        self.client(timeout=900).api.load_image(local.api.get_image(tag, chunk_size=1 << 20))
        self.client().images.get(tag)  # ImageNotFound if the load did not take

    def kill(self) -> None:
        """SIGKILL the daemon alone, as a machine dying would look to its clients: its API and every stream it
        served end at once (its containerd and containers are left to stop())."""
        assert self._process is not None
        self._process.kill()
        self._process.wait(timeout=_STOP_GRACE)

    def stop(self) -> None:
        """SIGTERM, wait, then SIGKILL; then whatever it left: its processes, its mounts and its folders."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=_STOP_GRACE)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=_STOP_GRACE)
        self._kill_leftovers()
        self._unmount_all()
        subprocess.run(["ip", "link", "delete", self.bridge], check=False, capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)

    def _kill_leftovers(self) -> None:
        """Its containerd, shims and sandboxes, if dockerd died before stopping them: every process whose command
        line names this engine's folder (nothing else on the machine does)."""
        marker = str(self.root).encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            with contextlib.suppress(OSError):
                if marker in (entry / "cmdline").read_bytes():
                    os.kill(int(entry.name), signal.SIGKILL)

    def _unmount_all(self) -> None:
        """Unmount everything under its folder, deepest first (overlays, shm, netns, volumes)."""
        mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
        mine = [m for m in mounts if m == str(self.root) or m.startswith(f"{self.root}/")]
        for point in sorted(set(mine), key=len, reverse=True):
            if subprocess.run(["umount", point], capture_output=True, check=False).returncode != 0:
                subprocess.run(["umount", "-l", point], capture_output=True, check=False)

    def leftovers(self) -> list[str]:
        """What is still here after stop(): processes, mounts or the folder (empty when clean)."""
        marker = str(self.root)
        found = [f"mount {line.split()[4]}" for line in Path("/proc/self/mountinfo").read_text().splitlines()
                 if line.split()[4].startswith(marker)]
        for entry in Path("/proc").iterdir():
            with contextlib.suppress(OSError):
                if entry.name.isdigit() and marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(f"process {entry.name}")
        bridge = subprocess.run(["ip", "link", "show", self.bridge], capture_output=True, check=False).returncode == 0
        return found + ([f"folder {marker}"] if self.root.exists() else []) + \
            ([f"bridge {self.bridge}"] if bridge else [])
