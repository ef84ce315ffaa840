"""Schemathesis against the server's own /openapi.json, on a bounded budget that covers every operation: whatever
it generates, from valid bodies to nonsense, no operation answers 5xx, and every answer's status, content type and
body are the ones the document describes (so the OpenAPI document says what the server really returns).

Two runs: the storage operations with more examples, and the operations that start a sandbox or call the model
(cell executions, tool calls, runs) with fewer, against a server whose model is the scripted one. bench/fuzz.py
runs longer."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.localserver import Server
from tests.conftest import running_server, sdk_client
from tests.scripted_model import ScriptedModel

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
# One worker: with two, hypothesis describing schemathesis's filter lambdas parses source from two threads at once,
# which trips CPython 3.11's AST recursion check (a SystemError inside schemathesis, not an answer of ours).
# The operations whose generated calls start sandboxes or wait on the model.
LIVE_PATHS = "execute|tool_calls|/runs"


def fuzz_command(base_url: str, examples: int, seed: int, *selection: str, config: Path | None = None) -> list[str]:
    chosen = ["--config-file", str(config)] if config else []
    return [str(SCHEMATHESIS), *chosen, "run", f"{base_url}/openapi.json", "--checks", CHECKS,
            "--max-examples", str(examples), "--request-timeout", "60", "--workers", "1", "--seed", str(seed),
            *selection]


def server_settings(model: ScriptedModel) -> dict[str, str]:
    return {"TOOLSHED_POOL_SIZE": "1", "TOOLSHED_MAX_SANDBOXES": "4", "TOOLSHED_MODEL_BASE_URL": model.base_url,
            "TOOLSHED_INTERRUPT_GRACE": "1"}


@pytest.fixture(scope="module")
def fuzzed_server(docker_ready: None, model: ScriptedModel,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("fuzz"), **server_settings(model)) as srv:
        yield srv


def assert_conforms(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    assert result.returncode == 0, result.stdout[-8000:]
    assert " passed" in result.stdout and "Selected: " in result.stdout


def test_storage_operations_conform(fuzzed_server: Server) -> None:
    assert_conforms(fuzz_command(fuzzed_server.base_url, 8, 1, "--exclude-path-regex", LIVE_PATHS))


def live_ids(server: Server) -> dict[str, str]:
    """A thread with a finished run, and a container: the ids the generated path parameters take, so the calls
    reach the engines instead of stopping at 404."""
    client = sdk_client(server)
    assistant = client.beta.assistants.create(model="scripted", tools=[{"type": "code_interpreter"}])
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": "hello"}]})
    assert run.status == "completed", run.last_error
    step = client.beta.threads.runs.steps.list(run.id, thread_id=run.thread_id).data[0]
    container = client.containers.create(name="fuzz")
    return {"thread_id": run.thread_id, "run_id": run.id, "step_id": step.id, "container_id": container.id}


def live_config(server: Server, directory: Path) -> Path:
    """A schemathesis config giving the generated path parameters real ids."""
    config = directory / "schemathesis.toml"
    ids = "\n".join(f'{name} = "{value}"' for name, value in live_ids(server).items())
    config.write_text(f"[parameters]\n{ids}\n")
    return config


def test_execution_and_run_operations_conform(fuzzed_server: Server, tmp_path: Path) -> None:
    config = live_config(fuzzed_server, tmp_path)
    assert_conforms(fuzz_command(fuzzed_server.base_url, 3, 1, "--include-path-regex", LIVE_PATHS, config=config))
