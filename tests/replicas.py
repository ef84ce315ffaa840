"""What the replica tests share: a database of each engine (`db`: SQLite in a temp dir, a real PostgreSQL from
tests/postgres_server.py), a fresh PostgreSQL database (`pg_url`), and real `toolshed serve` replicas on one
PostgreSQL database with short leases. tests/conftest.py makes the fixtures everybody's."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from openai import OpenAI

from orchestrator.db import Database, open_database
from orchestrator.localserver import Server
from tests.postgres_server import PostgresServer
from tests.scripted_model import ScriptedModel

KEY = "sk-replicas-shared"
# Seconds: short, so a dead replica's work is taken over fast; the checks allow 60 s all the same.
LEASE = 6


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        opened = open_database("", tmp_path)
    else:
        server: PostgresServer = request.getfixturevalue("postgres_server")
        opened = open_database(server.new_database(f"t_{uuid.uuid4().hex[:12]}"))
    yield opened
    opened.close()


@pytest.fixture
def pg_url(postgres_server: PostgresServer) -> str:
    return postgres_server.new_database(f"t_{uuid.uuid4().hex[:12]}")


@contextmanager
def replica(data_dir: Path, pg_url: str, model: ScriptedModel | None = None, **env: str) -> Iterator[Server]:
    from tests.conftest import running_server  # conftest imports this module's fixtures

    if model is not None:
        env["TOOLSHED_MODEL_BASE_URL"] = model.base_url
    with running_server(data_dir, replica=True, TOOLSHED_DATABASE_URL=pg_url, TOOLSHED_API_KEYS=json.dumps([KEY]),
                        TOOLSHED_POOL_SIZE="0",
                        TOOLSHED_SANDBOX_RUNTIME="runc", TOOLSHED_LEASE_SECONDS=str(LEASE), **env) as srv:
        yield srv


def client_of(server: Server) -> OpenAI:
    from tests.conftest import sdk_client

    return sdk_client(server).with_options(api_key=KEY)


def until(check: Callable[[], bool], seconds: float, what: str) -> float:
    """Poll `check` until it is true; how long it took."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < seconds, what
        time.sleep(0.2)
    return time.monotonic() - started


def model_asked(model: ScriptedModel, before: int) -> None:
    until(lambda: len(model.requests) > before, 60, "the run never called the model")
