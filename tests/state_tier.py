"""The PostgreSQL + S3 tier (issue 32): with TOOLSHED_TEST_STATE=postgres+s3 (`make test-state`), every server the
suite starts keeps its metadata in a real PostgreSQL and its file bytes in a real S3-compatible bucket
(tests/postgres_server.py, tests/s3_server.py), so the whole suite checks those backends as it checks the default.

Each data dir gets its own database and bucket, named after the dir: a test that restarts a server on the same
data dir finds its state again, and no two servers share state they did not ask to share. Tests about the local
files themselves (the SQLite file, blobs on disk) carry the `local_state` marker and are left out of this tier.

The tier runs the tests that start a server (`make test-state` selects `docker or server`): a test that starts
none runs exactly as it did in `make test`. So that no server-starting test falls outside the tier, a server
started by a test marked neither `docker` nor `server` (nor `postgres` or `s3`: those choose their state) fails
that test, in every tier.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from orchestrator.localserver import Server
from tests.postgres_server import PostgresServer
from tests.s3_server import S3Server

STATE = os.environ.get("TOOLSHED_TEST_STATE", "")
TIER = "postgres+s3"
# The test being set up or run: a session fixture starts its server while the first test that needs it sets up.
_current: list[pytest.Item] = []


def setting_up(item: pytest.Item) -> None:
    _current[:] = [item]


def _check_in_tier() -> None:
    """A test that starts a server is in the tier, or is a PostgreSQL or S3 test, which chose its state itself."""
    item = _current[0] if _current else None
    if item is not None and not any(item.get_closest_marker(name) for name in ("docker", "server", "postgres", "s3")):
        raise AssertionError(f"{item.nodeid} starts a server but is marked neither `docker` nor `server`: "
                             "mark it `server`, so that the PostgreSQL + S3 tier runs it")


def _state_env(pg: PostgresServer, s3: S3Server, data_dir: Path) -> dict[str, str]:
    """The database and bucket of `data_dir`, the database made on first use (the bucket is made by the server)."""
    key = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:16]
    name = f"t_{key}"
    with psycopg.connect(pg.url(), autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{name}"')
    return {"TOOLSHED_DATABASE_URL": pg.url(name), **s3.env(f"toolshed-{key}")}


@pytest.fixture(scope="session", autouse=True)
def external_state(request: pytest.FixtureRequest) -> Iterator[None]:
    """In the tier: every Server gets its data dir's database and bucket unless the test set its own. In every tier:
    a server is started only by a test the tier selects."""
    plain_init, plain_start = Server.__init__, Server.start

    def start(self: Server) -> None:
        _check_in_tier()
        plain_start(self)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Server, "start", start)
        if STATE == TIER:
            pg: PostgresServer = request.getfixturevalue("postgres_server")
            s3: S3Server = request.getfixturevalue("s3_server")

            def init(self: Server, data_dir: Path, **env: str) -> None:
                plain_init(self, data_dir, **{**_state_env(pg, s3, data_dir), **env})

            patch.setattr(Server, "__init__", init)
        yield


def deselect_local_state(items: list[pytest.Item]) -> list[pytest.Item]:
    """In the tier, the tests about local files are not run (they test the default backends' files)."""
    if STATE != TIER:
        return []
    return [item for item in items if item.get_closest_marker("local_state")]
