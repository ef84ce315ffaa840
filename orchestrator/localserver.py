"""A `toolshed serve` subprocess on loopback with its own data dir and namespace, for tests and benchmarks."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A `toolshed serve` subprocess on loopback, with its own data dir and container namespace."""

    def __init__(self, data_dir: Path, **env: str) -> None:
        self.port = _free_port()
        self.namespace = f"local-{secrets.token_hex(4)}"
        self.data_dir = data_dir
        self.env = {**os.environ, "TOOLSHED_DATA_DIR": str(data_dir), "TOOLSHED_NAMESPACE": self.namespace,
                    "TOOLSHED_PORT": str(self.port), "TOOLSHED_HOST": "127.0.0.1", **env}
        self.process: subprocess.Popen[bytes] | None = None
        self.log = data_dir / "server.log"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "orchestrator.cli", "serve", "--no-build"],
                env=self.env, stdout=log, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 90  # imports alone took ~28 s on this 2-core machine under a load of 12
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                if httpx.get(f"{self.base_url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        self.stop(kill=True)  # not left running behind the error
        raise RuntimeError(f"server did not start; log:\n{self.log.read_text()}")

    def stop(self, kill: bool = False) -> None:
        if self.process is not None:
            (self.process.kill if kill else self.process.terminate)()
            self.process.wait(timeout=30)
            self.process = None

    def remove_containers(self) -> None:
        """Force-remove every container of this server's namespace and unmount its sandbox disks."""
        ids = [found for label in ("namespace", "keeper-namespace") for found in subprocess.run(
            ["docker", "ps", "-aq", "--filter", f"label=toolshed.{label}={self.namespace}"],
            check=False, capture_output=True, text=True).stdout.split()]
        if ids:
            subprocess.run(["docker", "rm", "-f", *ids], check=False, capture_output=True)
        for disk in (self.data_dir / "sandboxes").glob("*/disk"):
            subprocess.run(["umount", "-l", str(disk)], check=False, capture_output=True)
