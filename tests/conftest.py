"""Shared fixtures. The docker tier runs a real `toolshed serve` process and drives it with the openai SDK.

A bare `pytest` without Docker skips the docker tier; with CI=true (set by .ci/run) or under `make test` a missing
engine or image fails the run instead.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import docker
import httpx
import openai
import pytest
from openai import OpenAI

from orchestrator.localserver import Server
from orchestrator.sandbox.image import default_tag, image_present
from retrieval.embedding import Embedder
from retrieval.runtimes import load_embedder
from tests.postgres_server import postgres_server  # noqa: F401 - a fixture, for the PostgreSQL + S3 tier
from tests.remote_switch import remote_settings, stop_engine
from tests.replicas import db, pg_url  # noqa: F401 - fixtures
from tests.s3_server import running_s3_server  # noqa: F401 - a fixture, for the PostgreSQL + S3 tier
from tests.scripted_model import ScriptedModel
from tests.state_tier import deselect_local_state, external_state, setting_up  # noqa: F401 - autouse

# CI, and `make test` (which has just installed Docker and built the image), must fail rather than skip.
REQUIRE_DOCKER = any(os.environ.get(name, "").lower() in ("1", "true", "yes")
                     for name in ("CI", "TOOLSHED_REQUIRE_DOCKER"))
# Small limits for the shared test server, so "too large" is cheap to reach.
EXPORT_LIMIT = 4 << 20
UPLOAD_LIMIT = 8 << 20


def _docker_problem() -> str | None:
    try:
        docker.from_env().ping()
    except Exception as exc:  # noqa: BLE001 - any failure means "no engine"
        return f"no Docker engine: {exc}"
    if not image_present(default_tag()):
        return f"sandbox image {default_tag()} is missing (run `make image`)"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tiers follow from what a test uses: anything needing the Docker engine is `docker`, anything loading the
    embedding model is `model` (so `-m "not docker and not model"` is the fast unit tier). Tests that restart the
    Docker engine run last, so they cannot disturb the others. The PostgreSQL + S3 tier leaves out the tests of
    local files (tests/state_tier.py)."""
    local = deselect_local_state(items)
    if local:
        config.hook.pytest_deselected(items=local)
        items[:] = [item for item in items if item not in local]
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        if "docker_ready" in used:
            item.add_marker(pytest.mark.docker)
        if "embedder" in used:
            item.add_marker(pytest.mark.model)
    items.sort(key=lambda item: item.get_closest_marker("restarts_engine") is not None)


def pytest_runtest_setup(item: pytest.Item) -> None:
    setting_up(item)


_skipped: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI and under `make test` a skipped test is a failed run, whatever made it skip."""
    if REQUIRE_DOCKER and _skipped and exitstatus == pytest.ExitCode.OK:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.ensure_newline()
            reporter.write_line(f"{len(_skipped)} tests skipped, which CI does not allow: {', '.join(_skipped)}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def skip_unless_required(problem: str | None) -> None:
    """Skip for `problem` on a developer's machine; in CI and under `make test` the same problem fails the run."""
    if problem is None:
        return
    if REQUIRE_DOCKER:
        pytest.fail(f"CI must run the docker tier: {problem}")
    pytest.skip(problem)


Evidence = Callable[[str], None]


@pytest.fixture
def evidence(request: pytest.FixtureRequest, record_property: Callable[[str, object], None]) -> Evidence:
    """For a test of the security battery (marked `attack("what")`): records the attack and what the test saw
    once it is contained, for bench/security.py's table."""
    marker = request.node.get_closest_marker("attack")
    assert marker is not None, "evidence is for tests marked @pytest.mark.attack(...)"
    record_property("attack", marker.args[0])
    return lambda seen: record_property("evidence", seen)


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The real embedding model, loaded once per test session."""
    return load_embedder()


@pytest.fixture(scope="session", autouse=True)
def remote_engine() -> Iterator[None]:
    """Under TOOLSHED_TEST_REMOTE, the second engine the servers' sandboxes run on is stopped after the session."""
    yield
    stop_engine()


@pytest.fixture(scope="session")
def docker_ready() -> None:
    skip_unless_required(_docker_problem())


@contextmanager
def running_server(data_dir: Path, *, replica: bool = False, **env: str) -> Iterator[Server]:
    """A `toolshed serve` subprocess for the block (`replica`: with its own address as TOOLSHED_REPLICA_URL); its
    containers are removed after."""
    srv = Server(data_dir, **{**remote_settings(), **env})
    if replica:
        srv.env["TOOLSHED_REPLICA_URL"] = srv.base_url
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
        srv.remove_containers()


def keys_cli(server: Server, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`toolshed keys ARGS` on the server's own database (its data dir, or in the PostgreSQL tier its URL)."""
    return subprocess.run([sys.executable, "-m", "orchestrator.cli", "keys", *args], capture_output=True, text=True,
                          check=check, timeout=60, env=server.env)


def sdk_client(server: Server, timeout: float = 120) -> OpenAI:
    return OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0, timeout=timeout)


@contextmanager
def new_container(client: OpenAI, name: str = "test") -> Iterator[str]:
    created = client.containers.create(name=name)
    try:
        yield created.id
    finally:
        try:
            client.containers.delete(created.id)
        except openai.NotFoundError:
            pass  # the test deleted it


@pytest.fixture(scope="module")
def model() -> Iterator[ScriptedModel]:
    """The scripted chat-completions server a module's runs talk to."""
    scripted = ScriptedModel().start()
    yield scripted
    scripted.stop()


@pytest.fixture(scope="session")
def server(docker_ready: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("server"), TOOLSHED_SANDBOX_DISK_QUOTA="64m",
                        TOOLSHED_INTERRUPT_GRACE="1", TOOLSHED_MAX_EXPORT_BYTES=str(EXPORT_LIMIT),
                        TOOLSHED_MAX_UPLOAD_BYTES=str(UPLOAD_LIMIT)) as srv:
        yield srv


@pytest.fixture(scope="session")
def client(server: Server) -> OpenAI:
    return sdk_client(server)


@pytest.fixture
def container(client: OpenAI) -> Iterator[str]:
    with new_container(client) as container_id:
        yield container_id


def run(client: OpenAI, container_id: str, code: str, **extra: object) -> dict:
    """POST /containers/{id}/execute and return the execution object."""
    return client.post(f"/containers/{container_id}/execute", body={"code": code, **extra}, cast_to=object)


def logs(execution: dict) -> str:
    return "".join(o["logs"] for o in execution["outputs"] if o["type"] == "logs")


def sse_events(response: httpx.Response) -> list[tuple[str | None, object]]:
    """A Server-Sent Events response as (event name, data) pairs: data parsed as JSON unless it is [DONE]; the
    name is None for data sent without an `event:` line (a name applies to one event only)."""
    events, name = [], None
    for line in response.iter_lines():
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            data = line.removeprefix("data: ")
            events.append((name, data if data == "[DONE]" else json.loads(data)))
            name = None
    return events


def metric_value(text: str, name: str) -> float:
    """The sum of the samples of a Prometheus text exposition whose line starts with `name`."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))
